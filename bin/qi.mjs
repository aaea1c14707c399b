#!/usr/bin/env node
// Command-line client: `npx qi chat "hello"`. Registers tsx so the TypeScript sources run as they are.
import { register } from 'tsx/esm/api';

register();
await import('../client/cli.ts');
