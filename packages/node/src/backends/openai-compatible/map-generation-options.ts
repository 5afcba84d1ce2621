import { type Sampling, responseFormatSchema } from "@tessera/protocol";

/**
 * The JSON format and tools of a job → the request fields an OpenAI-compatible server takes. Pure.
 * - `response_format` goes as OpenAI spells it (vLLM, SGLang, llama-server and MAX all read it), except on servers
 *   that document only `json_schema` (`jsonObject: "as-schema"`), where `json_object` becomes the schema
 *   `{"type":"object"}`, which asks for the same thing.
 * - `logprobs` and `top_logprobs` go as they are (the adapter asks for the tokens' own log-probabilities anyway).
 * - `tools`, `tool_choice` and `parallel_tool_calls` go as they are; a server started without tool parsing (vLLM
 *   without `--enable-auto-tool-choice`) answers 400, which reaches the client as bad_request with its message.
 */
export interface GenerationOptionsDialect {
  jsonObject: "native" | "as-schema";
}

export function mapGenerationOptions(sampling: Sampling, dialect: GenerationOptionsDialect): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const format = sampling.response_format;
  if (format?.type === "json_object" && dialect.jsonObject === "as-schema") {
    out.response_format = { type: "json_schema", json_schema: { name: "json_object", schema: responseFormatSchema(format), strict: true } };
  } else if (format) {
    out.response_format = format;
  }
  if (sampling.logprobs) {
    out.logprobs = true;
    if (sampling.top_logprobs) out.top_logprobs = sampling.top_logprobs;
  }
  if (sampling.tools && sampling.tools.length > 0) {
    out.tools = sampling.tools;
    if (sampling.tool_choice !== undefined) out.tool_choice = sampling.tool_choice;
    if (sampling.parallel_tool_calls !== undefined) out.parallel_tool_calls = sampling.parallel_tool_calls;
  }
  return out;
}
