import { z } from 'zod';
import { attributeFilterSchema, rankingOptionsSchema } from './search-ranking.js';

/**
 * The `file_search` tool, as OpenAI's Responses API takes it (`FileSearchTool`) and as this
 * service's chat completions take it (an extension, the same flat entry in `tools`): what both
 * sides agree on. The API runs the search over the tenant's vector stores before the chat job is
 * queued, and hands the job either the chunks as context (a real model) or the question and the
 * chunks to answer extractively from (an untrained one); the answer's citations are read back from
 * its `[n]` markers here.
 */

/** Stores one search may cover. OpenAI allows two; a few more cost little here (one search job each). */
export const MAX_FILE_SEARCH_STORES = 10;
/** OpenAI's default `max_num_results` for the tool. */
export const DEFAULT_FILE_SEARCH_RESULTS = 10;

export const fileSearchToolSchema = z
  .object({
    type: z.literal('file_search'),
    vector_store_ids: z.array(z.string().min(1).max(128)).min(1, 'must name at least one vector store').max(MAX_FILE_SEARCH_STORES),
    max_num_results: z.number().int().min(1).max(50).optional(),
    filters: attributeFilterSchema.nullable().optional(),
    ranking_options: rankingOptionsSchema.optional(),
  })
  .strict();
export type FileSearchTool = z.infer<typeof fileSearchToolSchema>;

/** A chunk the search found, as OpenAI's `file_search_call.results` list them. */
export interface FileSearchResult {
  file_id: string;
  filename: string;
  score: number;
  attributes: Record<string, string | number | boolean>;
  text: string;
}

/** What `include: ["file_search_call.results"]` asks for. */
export const FILE_SEARCH_RESULTS_INCLUDE = 'file_search_call.results';

/**
 * A real model sees at most this much of the chunks: enough for a few of them, and within the
 * context of the smallest decoder this service runs (2,048 positions) with room for the question
 * and the answer. The extractive answer reads every chunk, since it has no context to fill.
 */
export const MAX_GROUNDING_CHARS = 4000;

/**
 * The system message that puts the chunks into a real model's prompt: numbered, each with its file
 * name, and the model asked to cite them as [n], the marker the citations are read back from.
 */
export function groundingMessage(results: readonly FileSearchResult[]): string {
  if (results.length === 0) return "A search of the user's files found nothing that matches; say so rather than answering from memory.";
  const lines: string[] = [];
  let chars = 0;
  for (const [i, r] of results.entries()) {
    const line = `[${i + 1}] (file: ${r.filename}) ${r.text.replace(/\s+/g, ' ').trim()}`;
    if (lines.length > 0 && chars + line.length > MAX_GROUNDING_CHARS) break;
    lines.push(line.slice(0, MAX_GROUNDING_CHARS));
    chars += line.length;
  }
  return `Answer from these excerpts of the user's files, citing each excerpt you use as [n]:\n${lines.join('\n')}`;
}

/** OpenAI's `file_citation` annotation: `index` is where in the text the citation stands. */
export interface FileCitation {
  type: 'file_citation';
  file_id: string;
  filename: string;
  index: number;
}

/**
 * The citations of an answer: one per `[n]` marker that names a result (n counted from 1, as in
 * the prompt and the extractive answer), at the marker's position in the text. Markers that name
 * no result (a model's invention) are left as text.
 */
export function fileCitations(text: string, results: readonly Pick<FileSearchResult, 'file_id' | 'filename'>[]): FileCitation[] {
  const out: FileCitation[] = [];
  for (const m of text.matchAll(/\[(\d{1,3})\]/g)) {
    const r = results[Number(m[1]) - 1];
    if (r) out.push({ type: 'file_citation', file_id: r.file_id, filename: r.filename, index: m.index });
  }
  return out;
}

/** The extractive answer when the search found nothing: an untrained model must not pretend. */
export const NOTHING_FOUND_ANSWER = 'Nothing in the searched files matches the question.';

/** The search query of a conversation: its last user message (OpenAI rewrites it with the model; this service does not). */
export function fileSearchQuery(messages: readonly { role: string; content: string }[]): string {
  return [...messages].reverse().find((m) => m.role === 'user')?.content.trim() ?? '';
}

/** Results of several stores as one list: best score first, at most `max`. */
export function mergeByScore<T extends { score: number }>(lists: readonly (readonly T[])[], max: number): T[] {
  return lists
    .flat()
    .sort((a, b) => b.score - a.score)
    .slice(0, max);
}

/**
 * POST /v1/chat/completions takes the tool as an extension: the same flat entry as the Responses
 * API's, among `tools`. It is taken out of the body here, so that the rest is validated by the
 * chat schema unchanged (whose `tools` are functions). A `tool_choice` of 'auto' or 'required'
 * with no function left is met by the search itself and dropped; 'none' means no search.
 */
export function takeFileSearchTool(body: unknown): { tool: FileSearchTool | undefined; rest: unknown } {
  if (!body || typeof body !== 'object' || !Array.isArray((body as { tools?: unknown }).tools)) return { tool: undefined, rest: body };
  const all = (body as { tools: unknown[] }).tools;
  const isFileSearch = (t: unknown) => !!t && typeof t === 'object' && (t as { type?: unknown }).type === 'file_search';
  const found = all.filter(isFileSearch);
  if (found.length === 0) return { tool: undefined, rest: body };
  const { tools: [tool] } = z.object({ tools: z.array(fileSearchToolSchema).max(1, "must contain at most one 'file_search' tool") }).parse({ tools: found });
  const functions = all.filter((t) => !isFileSearch(t));
  const { tools: _all, tool_choice: choice, ...others } = body as { tools: unknown[]; tool_choice?: unknown };
  // 'none' turns the search off as it turns calls off; with no function left, 'none', 'auto' and 'required' say nothing more to the chat job.
  const keepChoice = functions.length > 0 || (choice !== undefined && typeof choice !== 'string');
  const rest = { ...others, ...(functions.length ? { tools: functions } : {}), ...(keepChoice ? { tool_choice: choice } : {}) };
  return { tool: choice === 'none' ? undefined : tool, rest };
}
