/// <reference lib="dom" />
/**
 * The playground page's script, bundled with the typed client by esbuild when the API serves it.
 * It talks to the service only through the public API with the key the user pastes in.
 */
import { eqFilter, parseAttributes, splitPairs } from '../attribute-args.js';
import { InferenceClient, type JobView, type VectorStoreFileView, type VectorStoreSearchResult } from '../inference-client.js';

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const keyInput = $<HTMLInputElement>('api-key');
const RECENT = 'playground.recentJobs';
let client: InferenceClient | undefined;
let running: string | undefined;

keyInput.value = localStorage.getItem('playground.apiKey') ?? '';
keyInput.addEventListener('change', () => void connect());
if (keyInput.value) void connect();

async function connect(): Promise<void> {
  localStorage.setItem('playground.apiKey', keyInput.value);
  client?.close();
  client = new InferenceClient({ baseUrl: location.origin, apiKey: keyInput.value });
  try {
    const models = await client.models();
    const chatModels = models.filter((m) => m.task === 'chat');
    fill('chat-model', chatModels.map((m) => m.id));
    // Says so when the model is the untrained test decoder, whose text is meaningless.
    const describe = () => ($('chat-model-description').textContent = chatModels.find((m) => m.id === $<HTMLSelectElement>('chat-model').value)?.description ?? '');
    $('chat-model').onchange = describe;
    describe();
    fill('embed-model', models.filter((m) => m.task === 'embedding').map((m) => m.id));
    $('connection').textContent = `connected: ${models.length} models`;
    // A key without the documents scope still connects: the panel says why it lists nothing.
    await Promise.all([refreshJobs(), refreshStores().catch(showStoreError)]);
  } catch (err) {
    $('connection').textContent = `error: ${(err as Error).message}`;
  }
}

function fill(id: string, options: string[]): void {
  const select = $<HTMLSelectElement>(id);
  select.replaceChildren(...options.map((o) => Object.assign(document.createElement('option'), { value: o, textContent: o })));
}

function remember(job: JobView): void {
  const ids = [job.id, ...JSON.parse(localStorage.getItem(RECENT) ?? '[]').filter((x: string) => x !== job.id)].slice(0, 20);
  localStorage.setItem(RECENT, JSON.stringify(ids));
}

$('chat-send').addEventListener('click', async () => {
  if (!client) return;
  const output = $('chat-output');
  const meta = $('chat-meta');
  output.textContent = '';
  meta.textContent = 'queued…';
  meta.classList.remove('error');
  try {
    const job = await client.submitJob({
      type: 'chat',
      model: $<HTMLSelectElement>('chat-model').value,
      messages: [{ role: 'user', content: $<HTMLTextAreaElement>('chat-input').value }],
      max_tokens: Number($<HTMLInputElement>('chat-max-tokens').value),
      temperature: Number($<HTMLInputElement>('chat-temperature').value),
      priority: 1,
    });
    remember(job);
    running = job.id;
    $<HTMLButtonElement>('chat-stop').disabled = false;
    meta.textContent = `job ${job.id}: generating…`;
    const result = (await client.follow(job.id, { onToken: (e) => output.append(e.text) })) as {
      finish_reason: string;
      usage: { prompt_tokens: number; completion_tokens: number };
      timings: { ttft_ms: number | null; tokens_per_second: number | null };
    };
    meta.textContent =
      `done (${result.finish_reason}): ${result.usage.prompt_tokens} prompt + ${result.usage.completion_tokens} completion tokens, ` +
      `first token after ${result.timings.ttft_ms ?? '–'} ms, ${result.timings.tokens_per_second ?? '–'} tokens/s`;
  } catch (err) {
    meta.textContent = `stopped: ${(err as Error).message}`;
    meta.classList.add('error');
  } finally {
    running = undefined;
    $<HTMLButtonElement>('chat-stop').disabled = true;
    void refreshJobs();
  }
});

$('chat-stop').addEventListener('click', () => {
  if (client && running) void client.cancelJob(running);
});

$('embed-send').addEventListener('click', async () => {
  if (!client) return;
  const texts = $<HTMLTextAreaElement>('embed-input').value.split('\n').map((t) => t.trim()).filter(Boolean);
  const out = $('embed-output');
  try {
    const vectors = await client.embed($<HTMLSelectElement>('embed-model').value, texts);
    const cos = (a: number[], b: number[]) => a.reduce((s, x, i) => s + x * b[i]!, 0);
    out.textContent = `${vectors.length} vectors of ${vectors[0]?.length} dimensions\ncosine similarity:\n` +
      vectors.map((a, i) => `${i + 1}: ${vectors.map((b) => cos(a, b).toFixed(3)).join('  ')}`).join('\n');
  } catch (err) {
    out.textContent = `error: ${(err as Error).message}`;
  }
});

$('doc-upload').addEventListener('click', async () => {
  const file = $<HTMLInputElement>('doc-file').files?.[0];
  const progress = $('doc-progress');
  if (!client || !file) return;
  try {
    const doc = await client.uploadDocument(file, {
      filename: file.name,
      collection: $<HTMLInputElement>('doc-collection').value,
      onProgress: (sent) => (progress.textContent = `uploading ${Math.round((sent / file.size) * 100)}%`),
    });
    progress.textContent = `uploaded; ingesting (job ${doc.job_id})…`;
    await client.follow(doc.job_id, {
      onProgress: (p) => {
        const pr = p as { stage?: string; pages_done?: number; pages_total?: number; chunks_done?: number; chunks_total?: number };
        progress.textContent = `${pr.stage ?? 'ingesting'}: pages ${pr.pages_done ?? 0}/${pr.pages_total ?? '?'}, chunks ${pr.chunks_done ?? 0}/${pr.chunks_total ?? '?'}`;
      },
    });
    const final = await client.getDocument(doc.id);
    progress.textContent = `${file.name}: ${final.status}, ${final.chunks} chunks`;
  } catch (err) {
    progress.textContent = `failed: ${(err as Error).message}`;
  }
  void refreshJobs();
});

$('search-send').addEventListener('click', async () => {
  if (!client) return;
  try {
    const ranker = $<HTMLSelectElement>('search-ranker').value as 'hybrid' | 'vector' | 'lexical';
    const hits = await client.search($<HTMLInputElement>('doc-collection').value, $<HTMLInputElement>('search-query').value, { top_k: 5, ranking_options: { ranker } });
    $('search-hits').replaceChildren(
      ...hits.map((h) => {
        const tr = document.createElement('tr');
        for (const v of [h.score.toFixed(3), h.document_id.slice(0, 8), String(h.page), h.text.slice(0, 160)]) tr.append(Object.assign(document.createElement('td'), { textContent: v }));
        return tr;
      }),
    );
  } catch (err) {
    $('search-hits').replaceChildren(Object.assign(document.createElement('tr'), { textContent: `error: ${(err as Error).message}` }));
  }
});

let botSession: string | undefined;
$('bot-reset').addEventListener('click', () => {
  botSession = undefined;
  $('bot-log').textContent = '';
});
$('bot-send').addEventListener('click', async () => {
  if (!client) return;
  const input = $<HTMLInputElement>('bot-input');
  const log = $('bot-log');
  try {
    const r = await client.chatbot({ user_id: 'playground', message: input.value, ...(botSession ? { session_id: botSession } : {}) });
    botSession = r.session_id;
    const tools = r.tool_calls.map((t) => `${t.name}: ${t.ok ? 'ok' : `failed (${t.error})`}`).join(', ');
    // Numbered as the reply's citations [n] number them.
    const sources = r.sources.map((s, i) => `[${i + 1}] ${s.document_id.slice(0, 8)} p.${s.page ?? '-'} (${s.score.toFixed(2)})`).join(', ');
    log.append(`you: ${input.value}\nbot [${r.intent} ${r.confidence}]: ${r.reply}\n${tools ? `  tools: ${tools}\n` : ''}${sources ? `  sources: ${sources}\n` : ''}`);
    input.value = '';
  } catch (err) {
    log.append(`error: ${(err as Error).message}\n`);
  }
});

$('jobs-refresh').addEventListener('click', () => void refreshJobs());

async function refreshJobs(): Promise<void> {
  if (!client) return;
  const ids: string[] = JSON.parse(localStorage.getItem(RECENT) ?? '[]');
  const rows = await Promise.all(ids.map((id) => client!.getJob(id).catch(() => undefined)));
  $('jobs-list').replaceChildren(
    ...rows.filter((j): j is JobView => !!j).map((j) => {
      const tr = document.createElement('tr');
      for (const v of [j.id.slice(-12), j.type, j.status, j.timings.queued_ms ?? '', j.timings.run_ms ?? '']) {
        tr.append(Object.assign(document.createElement('td'), { textContent: String(v) }));
      }
      return tr;
    }),
  );
}

// Vector stores: the OpenAI-shaped stores of the tenant, their files (uploaded through the Files
// API, then attached with attributes) and their search.
let currentStore: { id: string; name: string } | undefined;
/** Filenames by file id: a vector store file carries none (OpenAI's shape), the Files API does. */
const fileNames = new Map<string, string>();

const cell = (text: string) => Object.assign(document.createElement('td'), { textContent: text });
function actionButton(label: string, onClick: () => Promise<void>): HTMLTableCellElement {
  const button = Object.assign(document.createElement('button'), { textContent: label });
  button.addEventListener('click', () => void onClick().catch(showStoreError));
  const td = document.createElement('td');
  td.append(button);
  return td;
}
function storeStatus(text: string): void {
  $('vs-status').textContent = text;
  $('vs-status').classList.remove('error');
}
function showStoreError(err: unknown): void {
  $('vs-status').textContent = `error: ${(err as Error).message}`;
  $('vs-status').classList.add('error');
}
const attributesText = (a: Record<string, unknown>) => Object.entries(a).map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`).join(', ');

async function refreshStores(): Promise<void> {
  if (!client) return;
  const stores = await client.listVectorStores({ limit: 100 });
  if (currentStore && !stores.some((vs) => vs.id === currentStore!.id)) await selectStore(undefined);
  $('vs-list').replaceChildren(
    ...stores.map((vs) => {
      const tr = document.createElement('tr');
      tr.dataset.id = vs.id;
      tr.classList.toggle('selected', vs.id === currentStore?.id);
      const counts = `${vs.file_counts.completed} / ${vs.file_counts.total}${vs.file_counts.failed ? ` (${vs.file_counts.failed} failed)` : ''}`;
      tr.append(cell(vs.name || '(unnamed)'), cell(vs.id), cell(counts), cell(String(vs.usage_bytes)), cell(vs.status));
      tr.append(
        actionButton('Open', () => selectStore({ id: vs.id, name: vs.name })),
        actionButton('Delete', async () => {
          if (!confirm(`Delete the vector store "${vs.name || vs.id}" and its index? Its files stay in the Files API.`)) return;
          await client!.deleteVectorStore(vs.id);
          storeStatus(`deleted ${vs.name || vs.id}`);
          await refreshStores();
        }),
      );
      return tr;
    }),
  );
}

async function selectStore(store: { id: string; name: string } | undefined): Promise<void> {
  currentStore = store;
  $('vs-current').textContent = store ? `${store.name || '(unnamed)'} (${store.id})` : 'none selected';
  $('vs-results').replaceChildren();
  for (const tr of $('vs-list').querySelectorAll('tr')) tr.classList.toggle('selected', tr.dataset.id === store?.id);
  await refreshFiles();
}

function fileRow(f: VectorStoreFileView): HTMLTableRowElement {
  const tr = document.createElement('tr');
  tr.dataset.fileId = f.id;
  const status = f.last_error ? `${f.status}: ${f.last_error.message}` : f.status;
  tr.append(cell(fileNames.get(f.id) ?? f.id), cell(f.id), cell(status), cell(String(f.usage_bytes)), cell(attributesText(f.attributes)));
  const storeId = f.vector_store_id;
  tr.append(
    actionButton('Remove', async () => {
      await client!.deleteVectorStoreFile(storeId, f.id);
      storeStatus(`removed ${fileNames.get(f.id) ?? f.id}`);
      await Promise.all([refreshFiles(), refreshStores()]);
    }),
  );
  return tr;
}

async function refreshFiles(): Promise<void> {
  if (!client || !currentStore) {
    $('vs-files').replaceChildren();
    return;
  }
  const files = await client.listVectorStoreFiles(currentStore.id, { limit: 100 });
  await Promise.all(
    files.filter((f) => !fileNames.has(f.id)).map((f) => client!.getFile(f.id).then((x) => fileNames.set(f.id, x.filename), () => undefined)),
  );
  $('vs-files').replaceChildren(...files.map(fileRow));
}

$('vs-refresh').addEventListener('click', () => void Promise.all([refreshStores(), refreshFiles()]).catch(showStoreError));

$('vs-create').addEventListener('click', async () => {
  if (!client) return;
  try {
    const name = $<HTMLInputElement>('vs-name').value.trim();
    const vs = await client.createVectorStore(name ? { name } : {});
    storeStatus(`created ${vs.name || vs.id}`);
    await refreshStores();
    await selectStore({ id: vs.id, name: vs.name });
  } catch (err) {
    showStoreError(err);
  }
});

$('vs-upload').addEventListener('click', async () => {
  const file = $<HTMLInputElement>('vs-file').files?.[0];
  if (!client) return;
  if (!currentStore) return showStoreError(new Error('create or open a store first'));
  if (!file) return showStoreError(new Error('choose a file first'));
  const storeId = currentStore.id;
  try {
    // Read before the upload: a malformed pair should not leave an unattached file behind.
    const attributes = parseAttributes(splitPairs($<HTMLInputElement>('vs-attributes').value));
    storeStatus(`uploading ${file.name}…`);
    const uploaded = await client.uploadFile(file, { filename: file.name, purpose: 'assistants' });
    fileNames.set(uploaded.id, uploaded.filename);
    const attached = await client.addVectorStoreFile(storeId, { file_id: uploaded.id, attributes });
    await refreshFiles();
    storeStatus(`${file.name}: ingesting…`);
    const done = await client.followVectorStoreFile(storeId, attached.id, {
      // Only the row of this file is redrawn while it is ingested.
      onProgress: (f) => $('vs-files').querySelector(`tr[data-file-id="${CSS.escape(f.id)}"]`)?.replaceWith(fileRow(f)),
    });
    storeStatus(`${file.name}: ${done.status}${done.last_error ? ` (${done.last_error.message})` : ''}`);
    await Promise.all([refreshFiles(), refreshStores()]);
  } catch (err) {
    showStoreError(err);
  }
});

$('vs-search').addEventListener('click', async () => {
  if (!client) return;
  if (!currentStore) return showStoreError(new Error('create or open a store first'));
  const query = $<HTMLInputElement>('vs-query').value;
  try {
    const filters = eqFilter(splitPairs($<HTMLInputElement>('vs-filter').value));
    const ranker = $<HTMLSelectElement>('vs-ranker').value as 'hybrid' | 'vector' | 'lexical';
    const hits = await client.searchVectorStore(currentStore.id, query, {
      max_num_results: Number($<HTMLInputElement>('vs-max').value) || 5,
      ranking_options: { ranker },
      ...(filters ? { filters } : {}),
    });
    storeStatus(`${hits.length} result${hits.length === 1 ? '' : 's'}`);
    $('vs-results').replaceChildren(...hits.map((h) => resultRow(h, query)));
  } catch (err) {
    $('vs-results').replaceChildren();
    showStoreError(err);
  }
});

function resultRow(h: VectorStoreSearchResult, query: string): HTMLTableRowElement {
  const tr = document.createElement('tr');
  const content = document.createElement('td');
  content.append(...highlighted(h.content.map((c) => c.text).join('\n'), query));
  tr.append(cell(h.score.toFixed(3)), cell(h.filename), cell(attributesText(h.attributes)), content);
  return tr;
}

/**
 * The hit's text with the query's words marked (<mark>), built as DOM nodes so that a document's
 * text is never parsed as HTML. Long chunks are cut to a window around the first match.
 */
function highlighted(text: string, query: string): Node[] {
  const words = [...new Set(query.toLowerCase().match(/[\p{L}\p{N}]{2,}/gu) ?? [])];
  // Words are letters and digits only, so they need no escaping inside the pattern.
  const pattern = words.length ? new RegExp(`(${words.join('|')})`, 'giu') : undefined;
  const first = pattern ? text.search(pattern) : -1;
  const start = text.length > 600 && first > 200 ? first - 200 : 0;
  const shown = `${start > 0 ? '…' : ''}${text.slice(start, start + 600)}${start + 600 < text.length ? '…' : ''}`;
  if (!pattern) return [document.createTextNode(shown)];
  // split with one capture group alternates plain text (even) and matches (odd).
  return shown.split(pattern).map((part, i) => (i % 2 ? Object.assign(document.createElement('mark'), { textContent: part }) : document.createTextNode(part)));
}
