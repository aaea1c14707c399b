import { readdirSync, readFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/**
 * Real English sentences for benchmarks, without downloading a data set: the prose of the README
 * files of installed npm packages (code blocks, tables, links and markup removed), split into
 * sentences of 3 to 80 words. Deterministic for a given node_modules.
 */
export function loadSentences(limit: number): string[] {
  const modules = path.join(ROOT, 'node_modules');
  const readmes: string[] = [];
  const visit = (dir: string, depth: number) => {
    for (const name of readdirSync(dir).sort()) {
      if (name.startsWith('.')) continue;
      const full = path.join(dir, name);
      if (name.startsWith('@') && depth === 0) visit(full, 1);
      else {
        const readme = ['README.md', 'readme.md', 'Readme.md'].map((f) => path.join(full, f)).find((f) => existsSync(f));
        if (readme) readmes.push(readme);
      }
    }
  };
  visit(modules, 0);
  const seen = new Set<string>();
  const out: string[] = [];
  for (const file of readmes) {
    const prose = readFileSync(file, 'utf8')
      .replace(/```[\s\S]*?```/g, ' ')
      .replace(/`[^`]*`/g, ' ')
      .replace(/<[^>]+>/g, ' ')
      .replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1')
      .split('\n')
      .filter((l) => !/^\s*(\||#|[-*] \[|>|\s{4})/.test(l))
      .join(' ')
      .replace(/[*_#>|]/g, ' ')
      .replace(/\s+/g, ' ');
    for (const s of prose.split(/(?<=[.!?])\s+(?=[A-Z])/)) {
      const t = s.trim();
      const words = t.split(' ').length;
      if (words < 3 || words > 80 || !/[a-z]{3}/.test(t) || /https?:|[{}=;]|\s[.,:]/.test(t) || seen.has(t)) continue;
      seen.add(t);
      out.push(t);
      if (out.length >= limit) return out;
    }
  }
  return out;
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

export function summarise(latenciesMs: number[]) {
  const s = [...latenciesMs].sort((a, b) => a - b);
  const mean = s.reduce((a, b) => a + b, 0) / Math.max(1, s.length);
  return { n: s.length, mean, p50: percentile(s, 50), p99: percentile(s, 99) };
}

/** Prompts for the chat benchmarks: short everyday requests, one per concurrent stream. */
export const CHAT_PROMPTS = [
  'Write a short story about a lighthouse keeper.',
  'Explain how a queue differs from a stack.',
  'List three uses of vector search.',
  'What is the capital of France and why is it famous?',
  'Summarise the benefits of batching for inference.',
  'Describe the weather on a windy autumn day.',
  'How do I make a cup of green tea?',
  'Give advice to a new programmer.',
];
