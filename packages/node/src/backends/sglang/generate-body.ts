import { type Sampling, responseFormatSchema } from "@tessera/protocol";

/**
 * A job's sampling → the body of SGLang's native `POST /generate` (io_struct.py `GenerateReqInput`, sampling_params.py
 * `SamplingParams`), streamed, for prompt ids already known. Pure.
 * - `temperature`, `top_p`, `max_new_tokens`; `seed` as `sampling_params.sampling_seed` (SGLang's name for it; the
 *   OpenAI routes map `seed` to it the same way).
 * - `response_format` as `sampling_params.json_schema`, the schema as a JSON string (SGLang's spelling; `json_object`
 *   is the schema `{"type":"object"}`, as SGLang's own chat route turns it).
 * - `return_logprob: true` always: each chunk's `meta_info.output_token_logprobs` `[logprob, token_id, text]` carry the
 *   answer's ids and log-probabilities. A client's `top_logprobs` become `top_logprobs_num`, and then
 *   `return_text_in_logprobs: true` so each token and alternative has its text.
 * - `stop` is not sent: the coordinator applies stop sequences to the text it relays, for every backend (sampling.ts),
 *   and SGLang trims a matched stop string from the text but not from the ids, which would part the two.
 * - `ebnf`: a grammar the answer runs under instead (Tessera's one grammar text for tools and JSON mode,
 *   constrained/output-grammar.ts), as `sampling_params.ebnf`, which SGLang's xgrammar backend reads as GBNF;
 *   `response_format` and tools are then not sent (the grammar is what enforces them).
 */
export function generateBody(inputIds: readonly number[], sampling: Sampling, ebnf?: string): Record<string, unknown> {
  const params: Record<string, unknown> = {
    max_new_tokens: sampling.max_tokens,
    temperature: sampling.temperature,
    top_p: sampling.top_p,
  };
  if (sampling.seed !== undefined) params.sampling_seed = sampling.seed;
  if (ebnf !== undefined) params.ebnf = ebnf;
  else if (sampling.response_format) params.json_schema = JSON.stringify(responseFormatSchema(sampling.response_format));
  const body: Record<string, unknown> = {
    input_ids: [...inputIds],
    sampling_params: params,
    stream: true,
    return_logprob: true,
  };
  if (sampling.logprobs) {
    body.return_text_in_logprobs = true;
    if (sampling.top_logprobs) body.top_logprobs_num = sampling.top_logprobs;
  }
  return body;
}
