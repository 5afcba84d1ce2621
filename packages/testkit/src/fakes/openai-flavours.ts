/**
 * How each OpenAI-compatible server differs on the wire, as far as an adapter can notice. One record per flavour;
 * the fake server reads it, so every flavour is the same code with its real differences as data.
 */
export type OpenAIFlavourName = "vllm" | "sglang" | "max" | "llama-server" | "llama-swap";

export interface OpenAIFlavour {
  name: OpenAIFlavourName;
  owned_by: string;
  /** The body of a healthy `GET /health`: vLLM, SGLang and MAX answer 200 with no body. */
  healthBody: { kind: "empty" } | { kind: "json"; body: unknown } | { kind: "text"; text: string };
  /** `continue_final_message` + `add_generation_prompt:false` (vLLM, SGLang, from transformers' chat templates). */
  continueFinalMessage: boolean;
  /** A trailing assistant message is continued without any flag (llama-server's default assistant prefill). */
  prefillTrailingAssistant: boolean;
  /** Usage arrives in the final chunk even without `stream_options.include_usage` (llama-server, with timings). */
  usageAlwaysInLastChunk: boolean;
  /** Error body: `{"error":{…}}` (OpenAI envelope) or SGLang's top-level `{"object":"error", message, …}`. */
  errorShape: "envelope" | "top-level" | "llama-swap";
  /** Serves whatever model name it is asked for (llama-server has one model and ignores the name). */
  ignoresModelName: boolean;
}

export const OPENAI_FLAVOURS: Record<OpenAIFlavourName, OpenAIFlavour> = {
  vllm: {
    name: "vllm",
    owned_by: "vllm",
    healthBody: { kind: "empty" },
    continueFinalMessage: true,
    prefillTrailingAssistant: false,
    usageAlwaysInLastChunk: false,
    errorShape: "envelope",
    ignoresModelName: false,
  },
  sglang: {
    name: "sglang",
    owned_by: "sglang",
    healthBody: { kind: "empty" },
    continueFinalMessage: true,
    prefillTrailingAssistant: false,
    usageAlwaysInLastChunk: false,
    errorShape: "top-level",
    ignoresModelName: false,
  },
  max: {
    name: "max",
    owned_by: "modular",
    healthBody: { kind: "empty" },
    continueFinalMessage: false,
    prefillTrailingAssistant: false,
    usageAlwaysInLastChunk: false,
    errorShape: "envelope",
    ignoresModelName: false,
  },
  "llama-server": {
    name: "llama-server",
    owned_by: "llamacpp",
    healthBody: { kind: "json", body: { status: "ok" } },
    continueFinalMessage: false,
    prefillTrailingAssistant: true,
    usageAlwaysInLastChunk: true,
    errorShape: "envelope",
    ignoresModelName: true,
  },
  "llama-swap": {
    name: "llama-swap",
    owned_by: "llama-swap",
    healthBody: { kind: "text", text: "OK" },
    continueFinalMessage: false,
    prefillTrailingAssistant: true,
    usageAlwaysInLastChunk: true,
    errorShape: "llama-swap",
    ignoresModelName: false,
  },
};
