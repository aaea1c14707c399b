import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Ajv2020 } from 'ajv/dist/2020.js';

import { makeTinyDecoder, type TinyDecoderInfo } from '../../scripts/models/make-tiny-decoder.js';
import { ChatTokenizer } from '../../workers/chat/chat-tokenizer.js';
import { DecoderSession } from '../../workers/chat/decoder-session.js';
import {
  GenerationEngine,
  type GenerationEngineOptions,
  type EngineGrammar,
  type GenerationRequest,
  type GenerationResult,
  type StepReport,
  type TokenEvent,
} from '../../workers/chat/generation-engine.js';
import { ScriptedDecoder } from '../helpers/scripted-decoder.js';
import { GrammarError } from '../../workers/chat/grammar/grammar-error.js';
import { GrammarRuntime } from '../../workers/chat/grammar/grammar-runtime.js';
import type { ResponseFormat } from '../../workers/chat/grammar/response-format.js';

