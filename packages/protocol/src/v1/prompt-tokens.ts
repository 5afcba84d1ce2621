import { z } from "zod";

/**
 * Canonical prompt token ids (issue 17 §0; packages/node/src/backends/design.md "Canonical prompt"). The node that
 * first runs a chat job reports the ids it rendered its prompt into (the `prompt` stream part); the coordinator keeps
 * them on the live job and sends them with every continuation (`job.assign` `prompt_tokens`) and spot check
 * (`check.score` `prompt_tokens`), so every node runs, and every reference scores after, exactly the same prompt.
 *
 * Bounded: 131,072 ids (about 0.8 MB of JSON), past any context a node serves today; the coordinator further keeps
 * only lists within the job's own prompt-token bound.
 */
export const MAX_PROMPT_TOKEN_IDS = 131_072;
export const PromptTokenIds = z.array(z.number().int().min(0).max(2 ** 31)).min(1).max(MAX_PROMPT_TOKEN_IDS);
export type PromptTokenIds = z.infer<typeof PromptTokenIds>;
