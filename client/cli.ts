/**
 * qi: a terminal client for the service.
 *   qi models
 *   qi chat "hello" [--model tiny-chat] [--max-tokens 64] [--temperature 0.7] [--seed 1] [--no-stream]
 *   qi embed "text" ["more text" ...] [--model use-lite]
 *   qi upload <file> --collection C | qi search "query" --collection C [--top-k N] [--ranker hybrid|vector|lexical]
 *   qi jobs <id> | qi jobs cancel <id> | qi jobs follow <id>
 *   qi files upload <file> [--purpose batch] | qi files list | get <id> | content <id> | delete <id>
 *   qi batch create <file.jsonl> --endpoint /v1/embeddings [--follow] [--output out.jsonl]
 * Reads QI_URL (default http://127.0.0.1:3000) and QI_API_KEY.
 */
import { createReadStream, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { loadClientEnv } from '../shared/config/env.js';
import { rankingOptionsSchema } from '../shared/documents/search-ranking.js';
import { InferenceClient, InferenceError } from './inference-client.js';

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
      ranker: { type: 'string' },
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
      default:
        console.error(`unknown command "${command}"\n${USAGE}`);
        return 2;
    }
  } finally {
    client.close();
  }
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
