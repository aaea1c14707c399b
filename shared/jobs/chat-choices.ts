/**
 * Most samples one chat request may ask for (`n`); they share a prefill and a batch, see
 * generation-engine.ts. A module of its own because both the chat payload (the job catalog) and
 * the public requests (shared/api/request-schemas.ts, which the catalog imports) bound `n` by it.
 */
export const MAX_CHAT_CHOICES = 8;
