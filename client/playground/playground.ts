/// <reference lib="dom" />
/**
 * The playground page's script, bundled with the typed client by esbuild when the API serves it.
 * It talks to the service only through the public API with the key the user pastes in.
 */
import { InferenceClient, type JobView } from '../inference-client.js';

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
    await refreshJobs();
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
