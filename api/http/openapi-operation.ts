import type { RouteConfig } from '@asteasolutions/zod-to-openapi';
import type { RouteKey } from './route-table.js';

/**
 * What each route's `op` adds to its table entry: descriptions, parameters, bodies and responses.
 * In a file of its own so that openapi.ts and the parts it calls (openapi-security.ts,
 * openapi-documents.ts) share it without importing each other.
 */
export type Operation = Pick<RouteConfig, 'description' | 'request' | 'responses'>;
export type DescribeOperation = (key: RouteKey, operation: Operation) => void;
