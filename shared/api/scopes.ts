/**
 * What an API key or token may do. Here, not in api/, because the job catalog names the scope each
 * job type needs (shared/jobs/job-spec.ts) and the API's key store grants them.
 */
export const SCOPES = ['chat', 'embeddings', 'documents', 'files', 'batches', 'webhooks', 'admin'] as const;
export type Scope = (typeof SCOPES)[number];
