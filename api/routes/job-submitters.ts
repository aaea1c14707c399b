import type { SubmittableJobType } from '../../shared/jobs/job-catalog.js';
import type { CreateJobRequestOf } from '../../shared/jobs/job-requests.js';
import type { ModelRegistry } from '../../shared/models/model-registry.js';
import type { ChatService } from '../jobs/chat-service.js';
import type { JobService, JobView, SubmitOptions } from '../jobs/job-service.js';
import { checkEmbeddingInput, resolveEmbeddingModel } from './embeddings.routes.js';

/**
 * How POST /v1/jobs turns a submittable type's validated request into its job: the part of a job
 * type that needs the API's services (the model registry, a model's limits, ChatService), so it
 * cannot live in the shared catalog. Typed `{ [K in SubmittableJobType]: … }`: a type given `submit`
 * in the catalog does not compile until it has its line here.
 */
export type JobSubmitter<K extends SubmittableJobType> = (
  request: CreateJobRequestOf<K>,
  ctx: { tenant: string; opts: SubmitOptions },
) => Promise<{ view: JobView; created: boolean }>;

export type JobSubmitters = { [K in SubmittableJobType]: JobSubmitter<K> };

export interface JobSubmitterDeps {
  jobs: JobService;
  chat: ChatService;
  registry: ModelRegistry;
  maxInputs: number;
}

export function jobSubmitters(deps: JobSubmitterDeps): JobSubmitters {
  return {
    embedding: async ({ model: id, input, dimensions }, { tenant, opts }) => {
      const model = resolveEmbeddingModel(deps.registry, id);
      checkEmbeddingInput(input, dimensions, model, deps.maxInputs);
      return deps.jobs.submit('embedding', tenant, model, { model: model.id, input, dimensions }, opts);
    },
    chat: async ({ type: _type, timeout: _timeout, webhook: _webhook, model: id, priority, max_completion_tokens, ...params }, { tenant, opts }) => {
      const model = deps.chat.resolveModel(id);
      const payload = deps.chat.payload(model, { ...params, max_tokens: max_completion_tokens ?? params.max_tokens });
      return deps.chat.submit(tenant, model, payload, { ...opts, ...(priority ? { priority } : {}) });
    },
  };
}
