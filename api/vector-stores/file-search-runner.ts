import {
  DEFAULT_FILE_SEARCH_RESULTS,
  fileSearchQuery,
  groundingMessage,
  mergeByScore,
  type FileSearchResult,
  type FileSearchTool,
} from '../../shared/documents/file-search.js';
import { errors } from '../../shared/errors/app-error.js';
import type { JobPayload } from '../../shared/jobs/job-catalog.js';
import type { ChatModelConfig } from '../../shared/models/model-registry.js';
import type { VectorStoreService } from './vector-store-service.js';

/** The longest query a vector store search takes (vectorStoreSearchSchema). */
const MAX_QUERY_CHARS = 10_000;

export interface FileSearchRun {
  query: string;
  results: FileSearchResult[];
}

/**
 * The `file_search` tool of /v1/responses and /v1/chat/completions: the same search as
 * POST /v1/vector_stores/{id}/search, over each named store of the caller's tenant (a store of
 * another tenant is a missing one: 404), the stores' hits merged by score. Then the chat job is
 * grounded in the hits: a real model gets them in its prompt; a model marked `untrained` (its text
 * is meaningless) is asked for an extractive answer made of their sentences instead.
 */
export class FileSearchRunner {
  constructor(private readonly deps: { vectorStores: VectorStoreService }) {}

  async search(tenant: string, tool: FileSearchTool, messages: readonly { role: string; content: string }[], requestId?: string): Promise<FileSearchRun> {
    const query = fileSearchQuery(messages).slice(0, MAX_QUERY_CHARS);
    if (!query) throw errors.invalidRequest("The 'file_search' tool searches with the last user message, and there is none with text.", 'input');
    const max = tool.max_num_results ?? DEFAULT_FILE_SEARCH_RESULTS;
    const request = {
      query,
      max_num_results: max,
      ...(tool.filters ? { filters: tool.filters } : {}),
      ...(tool.ranking_options ? { ranking_options: tool.ranking_options } : {}),
    };
    const pages = await Promise.all([...new Set(tool.vector_store_ids)].map((id) => this.deps.vectorStores.search(tenant, id, request, requestId)));
    const lists = pages.map((page) =>
      page.data.map((hit): FileSearchResult => ({
        file_id: hit.file_id,
        filename: hit.filename,
        score: hit.score,
        attributes: hit.attributes as FileSearchResult['attributes'],
        text: hit.content.map((c) => c.text).join('\n'),
      })),
    );
    return { query, results: mergeByScore(lists, max) };
  }
}

/** Whether a model answers file searches extractively: its text would be meaningless. */
export function answersExtractively(model: ChatModelConfig): boolean {
  return model.format === 'hf-decoder' && model.untrained;
}

/**
 * The chat job grounded in a search: the excerpts as a system message (joined to the caller's own
 * system message, since some chat templates take only one, first), or, for an untrained model, the
 * question and the excerpts the worker answers from.
 */
export function groundedPayload(payload: JobPayload<'chat'>, model: ChatModelConfig, run: FileSearchRun): JobPayload<'chat'> {
  if (answersExtractively(model)) return { ...payload, extractive: { question: run.query, sources: run.results.map((r) => ({ text: r.text })) } };
  const grounding = groundingMessage(run.results);
  const [first, ...rest] = payload.messages;
  const messages =
    first?.role === 'system' ? [{ ...first, content: `${first.content}\n\n${grounding}` }, ...rest] : [{ role: 'system' as const, content: grounding }, ...payload.messages];
  return { ...payload, messages };
}
