/**
 * qi: a terminal client for the service.
 *   qi models
 *   qi chat "hello" [--model tiny-chat] [--max-tokens 64] [--temperature 0.7] [--seed 1] [--no-stream]
 *   qi embed "text" ["more text" ...] [--model use-lite]
 *   qi upload <file> --collection C | qi search "query" --collection C [--top-k N] [--ranker hybrid|vector|lexical]
 *   qi jobs <id> | qi jobs cancel <id> | qi jobs follow <id>
 *   qi files upload <file> [--purpose batch] | qi files list | get <id> | content <id> | delete <id>
 *   qi batch create <file.jsonl> --endpoint /v1/embeddings [--follow] [--output out.jsonl]
 *   qi webhooks add <url> --events job.completed,job.failed | list | delete <id> | rotate <id> [--overlap S] | deliveries <id>
 *   qi vector-stores create [--name N] | list | get <id> | delete <id>
 *   qi vector-stores files add <store> <file> [--attr k=v]... [--wait] | files list <store> | files delete <store> <file-id>
 *   qi vector-stores search <store> "query" [--max N] [--ranker hybrid|vector|lexical] [--filter k=v]...
 * Reads QI_URL (default http://127.0.0.1:3000) and QI_API_KEY.
 */
import { createReadStream, existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { loadClientEnv } from '../shared/config/env.js';
import type { WebhookEventType } from '../shared/webhooks/webhook-api.js';
import { rankingOptionsSchema } from '../shared/documents/search-ranking.js';
import { eqFilter, parseAttributes } from './attribute-args.js';
import { InferenceClient, InferenceError, type VectorStoreFileView } from './inference-client.js';

const USAGE = `usage: qi <command> [options]
  models                              list the models you may use
  chat <message> [--model M] [--max-tokens N] [--temperature T] [--seed S] [--no-stream]
  embed <text>... [--model M]         print one line per text: its dimensions and first values
  upload <file> --collection C         upload a document, with progress bars for the upload and its ingestion
  search <query> --collection C [--top-k N] [--ranker hybrid|vector|lexical]
  jobs <id>                           show a job
  jobs follow <id>                    follow a job live (tokens, progress) until it ends
  jobs cancel <id>                    cancel a job
  files upload <file> [--purpose P]   upload a file (purpose: batch (default), user_data, assistants)
  files list | get <id> | content <id> | delete <id>
  batch create <file.jsonl> --endpoint E [--follow] [--output F]
                                      upload a JSONL file and start a batch on it (E: /v1/embeddings or
                                      /v1/chat/completions); --follow shows progress until it ends, then
                                      writes the output file to F (default: stdout) and errors to stderr
  batch get <id> | cancel <id> | list
  webhooks add <url> --events E,E [--description D]   register an endpoint (prints its secret, shown once)
  webhooks list | delete <id> | rotate <id> [--overlap SECONDS] | deliveries <id>
  vector-stores create [--name N] | list | get <id> | delete <id>
  vector-stores files add <store> <file> [--attr k=v]... [--wait]
                                      upload a local file (purpose assistants; or give a file-… id) and
                                      attach it with its attributes (numbers and true/false are typed,
                                      "quoted" stays a string); --wait follows its ingestion to the end
  vector-stores files list <store> | files delete <store> <file-id>
  vector-stores search <store> <query> [--max N] [--ranker hybrid|vector|lexical] [--filter k=v]...
                                      several --filter are all required (eq, joined by and)
environment: QI_URL (default http://127.0.0.1:3000), QI_API_KEY`;

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      model: { type: 'string' },
      'max-tokens': { type: 'string' },
      temperature: { type: 'string' },
      seed: { type: 'string' },
      'no-stream': { type: 'boolean' },
      collection: { type: 'string' },
      'top-k': { type: 'string' },
      purpose: { type: 'string' },
      endpoint: { type: 'string' },
      follow: { type: 'boolean' },
      output: { type: 'string' },
      events: { type: 'string' },
      description: { type: 'string' },
      overlap: { type: 'string' },
      ranker: { type: 'string' },
      name: { type: 'string' },
      attr: { type: 'string', multiple: true },
      filter: { type: 'string', multiple: true },
      max: { type: 'string' },
      wait: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const [command, ...args] = positionals;
  if (values.help || !command) {
    console.log(USAGE);
    return command ? 0 : 2;
  }
  const env = loadClientEnv();
  if (!env.QI_API_KEY) throw new Error('set QI_API_KEY to an API key of the service');
  const client = new InferenceClient({ baseUrl: env.QI_URL, apiKey: env.QI_API_KEY });
  const num = (v: string | undefined) => (v === undefined ? undefined : Number(v));
  try {
    switch (command) {
      case 'models':
        for (const m of await client.models()) console.log(`${m.id}\t${m.task}\t${m.description ?? ''}`);
        return 0;
      case 'chat': {
        const message = args.join(' ');
        if (!message) throw new Error('chat needs a message: qi chat "hello"');
        const opts = { max_tokens: num(values['max-tokens']), temperature: num(values.temperature), seed: num(values.seed) };
        const model = values.model ?? 'tiny-chat';
        const messages = [{ role: 'user' as const, content: message }];
        if (values['no-stream']) {
          console.log((await client.chat(model, messages, opts)).content);
        } else {
          for await (const text of client.chatStream(model, messages, opts)) process.stdout.write(text);
          process.stdout.write('\n');
        }
        return 0;
      }
      case 'embed': {
        if (args.length === 0) throw new Error('embed needs at least one text');
        const vectors = await client.embed(values.model ?? 'use-lite', args);
        vectors.forEach((v, i) => console.log(`${i}\t${v.length} dims\t[${v.slice(0, 4).map((x) => x.toFixed(4)).join(', ')}, ...]`));
        return 0;
      }
      case 'upload': {
        const file = args[0];
        if (!file || !values.collection) throw new Error('usage: qi upload <file> --collection <name>');
        const size = statSync(file).size;
        const doc = await client.uploadDocument(createReadStream(file), {
          filename: path.basename(file),
          collection: values.collection,
          size,
          onProgress: (sent) => bar('upload', sent, size),
        });
        process.stderr.write('\n');
        await client.follow(doc.job_id, {
          onProgress: (p) => {
            const pr = p as { stage?: string; pages_done?: number; pages_total?: number; chunks_done?: number; chunks_total?: number };
            if (pr.chunks_total) bar(pr.stage ?? 'ingest', pr.chunks_done ?? 0, pr.chunks_total);
            else if (pr.pages_total) bar(pr.stage ?? 'ingest', pr.pages_done ?? 0, pr.pages_total);
          },
        });
        process.stderr.write('\n');
        const final = await client.getDocument(doc.id);
        console.log(`${doc.id}\t${final.status}\t${final.chunks} chunks`);
        return final.status === 'ready' ? 0 : 1;
      }
      case 'search': {
        const query = args.join(' ');
        if (!query || !values.collection) throw new Error('usage: qi search "query" --collection <name>');
        const ranker = rankingOptionsSchema.shape.ranker.parse(values.ranker);
        const hits = await client.search(values.collection, query, { top_k: num(values['top-k']) ?? 5, ...(ranker ? { ranking_options: { ranker } } : {}) });
        for (const h of hits) console.log(`${h.score.toFixed(3)}\t${h.document_id.slice(0, 8)} p.${h.page}\t${h.text.replace(/\s+/g, ' ').slice(0, 100)}`);
        return 0;
      }
      case 'jobs': {
        const [sub, id] = args[0] === 'cancel' || args[0] === 'follow' ? [args[0], args[1]] : ['show', args[0]];
        if (!id) throw new Error('jobs needs a job id');
        if (sub === 'cancel') console.log(JSON.stringify(await client.cancelJob(id), null, 2));
        else if (sub === 'show') console.log(JSON.stringify(await client.getJob(id), null, 2));
        else {
          const result = await client.follow(id, {
            onToken: (e) => process.stdout.write(e.text),
            onProgress: (p) => process.stderr.write(`\rprogress ${JSON.stringify(p)}`),
          });
          process.stdout.write('\n');
          console.log(JSON.stringify(result, null, 2).slice(0, 2000));
        }
        return 0;
      }
      case 'files': {
        const [sub, arg] = args;
        if (sub === 'upload') {
          if (!arg) throw new Error('usage: qi files upload <file> [--purpose batch]');
          const purpose = (values.purpose ?? 'batch') as 'batch' | 'assistants' | 'user_data';
          console.log(JSON.stringify(await client.uploadFile(readFileSync(arg), { filename: path.basename(arg), purpose }), null, 2));
        } else if (sub === 'list') {
          for (const f of await client.listFiles({ purpose: values.purpose })) console.log(`${f.id}	${f.purpose}	${f.bytes}	${f.filename}`);
        } else if (sub === 'get' && arg) console.log(JSON.stringify(await client.getFile(arg), null, 2));
        else if (sub === 'content' && arg) process.stdout.write(await client.fileContent(arg));
        else if (sub === 'delete' && arg) console.log(JSON.stringify(await client.deleteFile(arg)));
        else throw new Error('usage: qi files upload <file> | list | get <id> | content <id> | delete <id>');
        return 0;
      }
      case 'batch': {
        const [sub, arg] = args;
        if (sub === 'create') {
          const endpoint = values.endpoint;
          if (!arg || (endpoint !== '/v1/embeddings' && endpoint !== '/v1/chat/completions')) {
            throw new Error('usage: qi batch create <file.jsonl> --endpoint /v1/embeddings|/v1/chat/completions [--follow] [--output F]');
          }
          const file = await client.uploadFile(readFileSync(arg), { filename: path.basename(arg), purpose: 'batch' });
          const batch = await client.createBatch({ input_file_id: file.id, endpoint });
          process.stderr.write(`${batch.id} created from ${file.id}\n`);
          if (!values.follow) {
            console.log(batch.id);
            return 0;
          }
          const done = await client.followBatch(batch.id, {
            onProgress: (b) => bar(b.status, b.request_counts.completed + b.request_counts.failed, b.request_counts.total),
          });
          process.stderr.write(`\n${done.id} ${done.status}: ${done.request_counts.completed} completed, ${done.request_counts.failed} failed\n`);
          if (done.output_file_id) {
            const text = await client.fileContent(done.output_file_id);
            if (values.output) writeFileSync(values.output, text);
            else process.stdout.write(text);
          }
          if (done.error_file_id) process.stderr.write(await client.fileContent(done.error_file_id));
          for (const e of done.errors?.data ?? []) process.stderr.write(`${e.code}: ${e.message}\n`);
          return done.status === 'completed' ? 0 : 1;
        }
        if (sub === 'get' && arg) console.log(JSON.stringify(await client.getBatch(arg), null, 2));
        else if (sub === 'cancel' && arg) console.log(JSON.stringify(await client.cancelBatch(arg), null, 2));
        else if (sub === 'list') for (const b of await client.listBatches()) console.log(`${b.id}\t${b.status}\t${b.endpoint}\t${b.request_counts.completed}/${b.request_counts.total}`);
        else throw new Error('usage: qi batch create <file> --endpoint E [--follow] | get <id> | cancel <id> | list');
        return 0;
      }
      case 'webhooks': {
        const [sub, arg] = args;
        if (sub === 'add') {
          if (!arg || !values.events) throw new Error('usage: qi webhooks add <url> --events job.completed,job.failed');
          const events = values.events.split(',').map((e) => e.trim()) as WebhookEventType[];
          const ep = await client.createWebhook({ url: arg, events, ...(values.description ? { description: values.description } : {}) });
          console.log(`${ep.id}\t${ep.url}\t${ep.events.join(',')}\nsecret (shown once): ${ep.secret}`);
        } else if (sub === 'list') {
          for (const ep of await client.listWebhooks()) console.log(`${ep.id}\t${ep.url}\t${ep.events.join(',')}\tcircuit ${ep.circuit.state}`);
        } else if (sub === 'delete' && arg) {
          await client.deleteWebhook(arg);
          console.log(`${arg}\tdeleted`);
        } else if (sub === 'rotate' && arg) {
          const ep = await client.rotateWebhookSecret(arg, { overlap_seconds: num(values.overlap) ?? 0 });
          console.log(`new secret (shown once): ${ep.secret}`);
        } else if (sub === 'deliveries' && arg) {
          for (const d of await client.webhookDeliveries(arg)) {
            console.log(`${d.event_id}\t${d.event_type}\t${d.state}\t${d.attempts} attempt(s)\t${d.last_status_code ?? '-'}\t${d.last_error ?? ''}`);
          }
        } else throw new Error('usage: qi webhooks add|list|delete|rotate|deliveries …');
        return 0;
      }
      case 'vector-stores':
        return await vectorStores(client, args, values);
      default:
        console.error(`unknown command "${command}"\n${USAGE}`);
        return 2;
    }
  } finally {
    client.close();
  }
}

/** `qi vector-stores …`: one tab-separated line per store, file or hit, JSON for a single object. */
async function vectorStores(
  client: InferenceClient,
  args: string[],
  values: { name?: string; attr?: string[]; filter?: string[]; max?: string; ranker?: string; wait?: boolean },
): Promise<number> {
  const [sub, ...rest] = args;
  const fileLine = (f: VectorStoreFileView) => `${f.id}\t${f.status}\t${f.usage_bytes}\t${JSON.stringify(f.attributes)}${f.last_error ? `\t${f.last_error.code}: ${f.last_error.message}` : ''}`;
  switch (sub) {
    case 'create': {
      const vs = await client.createVectorStore(values.name === undefined ? {} : { name: values.name });
      console.log(JSON.stringify(vs, null, 2));
      return 0;
    }
    case 'list':
      for (const vs of await client.listVectorStores({ limit: 100 })) {
        console.log(`${vs.id}\t${vs.name}\t${vs.status}\t${vs.file_counts.completed}/${vs.file_counts.total} files\t${vs.usage_bytes} bytes`);
      }
      return 0;
    case 'get':
      if (!rest[0]) break;
      console.log(JSON.stringify(await client.getVectorStore(rest[0]), null, 2));
      return 0;
    case 'delete':
      if (!rest[0]) break;
      await client.deleteVectorStore(rest[0]);
      console.log(`${rest[0]}\tdeleted`);
      return 0;
    case 'files': {
      const [action, store, file] = rest;
      if (action === 'add' && store && file) {
        // Parsed before anything is uploaded, so a bad pair leaves no orphan file behind.
        const attributes = parseAttributes(values.attr ?? []);
        // A local path is uploaded first; an id of an uploaded file (file-…) is attached as it is.
        const fileId = existsSync(file) ? (await client.uploadFile(readFileSync(file), { filename: path.basename(file), purpose: 'assistants' })).id : file;
        let f = await client.addVectorStoreFile(store, { file_id: fileId, attributes });
        if (values.wait) {
          f = await client.followVectorStoreFile(store, f.id, { onProgress: (v) => process.stderr.write(`\r${v.id} ${v.status}`) });
          process.stderr.write('\n');
        }
        console.log(fileLine(f));
        return f.status === 'failed' || f.status === 'cancelled' ? 1 : 0;
      }
      if (action === 'list' && store) {
        for (const f of await client.listVectorStoreFiles(store, { limit: 100 })) console.log(fileLine(f));
        return 0;
      }
      if (action === 'delete' && store && file) {
        await client.deleteVectorStoreFile(store, file);
        console.log(`${file}\tremoved from ${store}`);
        return 0;
      }
      break;
    }
    case 'search': {
      const [store, ...words] = rest;
      const query = words.join(' ');
      if (!store || !query) break;
      const ranker = rankingOptionsSchema.shape.ranker.parse(values.ranker);
      const filters = eqFilter(values.filter ?? []);
      const max = values.max === undefined ? undefined : Number(values.max);
      const hits = await client.searchVectorStore(store, query, {
        ...(max === undefined ? {} : { max_num_results: max }),
        ...(ranker ? { ranking_options: { ranker } } : {}),
        ...(filters ? { filters } : {}),
      });
      for (const h of hits) {
        const text = h.content.map((c) => c.text).join(' ').replace(/\s+/g, ' ');
        console.log(`${h.score.toFixed(3)}\t${h.filename}\t${h.file_id}\t${JSON.stringify(h.attributes)}\t${text.slice(0, 120)}`);
      }
      return 0;
    }
  }
  throw new Error('usage: qi vector-stores create [--name N] | list | get <id> | delete <id> | files add <store> <file> [--attr k=v]... [--wait] | files list <store> | files delete <store> <file-id> | search <store> <query> [--max N] [--ranker R] [--filter k=v]...');
}

/** A one-line progress bar on stderr, redrawn in place. */
function bar(label: string, done: number, total: number): void {
  const width = 30;
  const frac = total > 0 ? Math.min(1, done / total) : 0;
  const filled = Math.round(frac * width);
  process.stderr.write(`\r${label.padEnd(8)} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${Math.round(frac * 100)}% (${done}/${total})`);
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    const e = err as Error;
    console.error(e instanceof InferenceError ? `error ${e.status}${e.code ? ` (${e.code})` : ''}: ${e.message}` : `error: ${e.message}`);
    process.exit(1);
  },
);
