import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { chatbotConfigSchema } from '../../shared/chatbot/chatbot-config.js';

/** Where config/chatbot.example.json expects the demo tool service. */
export const EXAMPLE_TOOLS_ORIGIN = 'http://127.0.0.1:8081';

/**
 * The chatbot config `npm start` serves when CHATBOT_CONFIG is not set: the example bot
 * (config/chatbot.example.json) for each of the given tenants, its tool URLs pointed at the demo
 * tool service wherever that listens. Written to `file`; validated first, so a broken example
 * stops the launcher with the config's own error rather than a bot that 404s.
 */
export function writeDemoChatbotConfig(opts: { example: string; tenants: string[]; toolsUrl: string; file: string }): string {
  const example = chatbotConfigSchema.parse(JSON.parse(readFileSync(opts.example, 'utf8')));
  const bot = Object.values(example.tenants)[0];
  if (!bot) throw new Error(`${opts.example} has no bot`);
  const tools = bot.tools.map((t) => ({ ...t, url: t.url.startsWith(EXAMPLE_TOOLS_ORIGIN) ? opts.toolsUrl + t.url.slice(EXAMPLE_TOOLS_ORIGIN.length) : t.url }));
  const config = { tenants: Object.fromEntries(opts.tenants.map((t) => [t, { ...bot, tools }])) };
  mkdirSync(path.dirname(opts.file), { recursive: true });
  writeFileSync(opts.file, `${JSON.stringify(config, null, 2)}\n`);
  return opts.file;
}
