/**
 * The backend settings as data, for the daemon's config module (the only reader of env and config files).
 * Adapters and the probe never read these themselves: config resolves them (flag > env > file > default) and
 * passes plain values in. Hosts accept Ollama's own `OLLAMA_HOST` spellings (`0.0.0.0:11434`, `host`,
 * `http://host:port`); `normalizeHost` turns any of them into a base URL.
 */
export const BACKEND_KINDS = ["auto", "ollama", "vllm", "sglang", "max", "llama-server", "llama-swap", "openai-compatible", "embedded"] as const;
export type BackendKindSetting = (typeof BACKEND_KINDS)[number];

export interface BackendSetting {
  /** Key in node.toml. */
  key: string;
  env: string;
  default: string;
  description: string;
}

export const BACKEND_SETTINGS: readonly BackendSetting[] = [
  {
    key: "backend",
    env: "TESSERA_BACKEND",
    default: "auto",
    description: `Inference backend: ${BACKEND_KINDS.join(", ")}. "auto" probes Ollama, vLLM, SGLang, MAX, llama.cpp in that order, then falls back to embedded.`,
  },
  { key: "ollama_host", env: "OLLAMA_HOST", default: "http://127.0.0.1:11434", description: "Ollama server (native API)." },
  { key: "ollama_keep_alive", env: "OLLAMA_KEEP_ALIVE", default: "5m", description: 'How long Ollama keeps a model loaded after a job ("5m", "1h", "-1" = forever).' },
  { key: "vllm_host", env: "VLLM_HOST", default: "http://127.0.0.1:8000", description: "vLLM server (one instance)." },
  {
    key: "vllm_instances",
    env: "TESSERA_VLLM_INSTANCES",
    default: "",
    description: 'Several vLLM instances, one model each: TOML array of {host, model}, or in the env a JSON array [{"host":"http://127.0.0.1:8001","model":"Qwen/Qwen2.5-7B-Instruct"}]. Overrides vllm_host.',
  },
  { key: "sglang_host", env: "SGLANG_HOST", default: "http://127.0.0.1:30000", description: "SGLang server." },
  { key: "max_host", env: "MAX_HOST", default: "http://127.0.0.1:8080", description: "Modular MAX server (max serve)." },
  { key: "llama_server_host", env: "LLAMA_SERVER_HOST", default: "http://127.0.0.1:8080", description: "llama.cpp llama-server or llama-swap." },
  { key: "openai_compatible_host", env: "TESSERA_OPENAI_COMPATIBLE_HOST", default: "", description: 'Any other OpenAI-compatible server (backend = "openai-compatible").' },
  { key: "backend_api_key", env: "TESSERA_BACKEND_API_KEY", default: "", description: "Bearer token for an OpenAI-compatible backend started with --api-key." },
  {
    key: "reference_scoring",
    env: "TESSERA_REFERENCE_SCORING",
    default: "false",
    description:
      "vLLM or SGLang: score other nodes' answers for spot checks (prompt log-probabilities, 20 a position), so the coordinator may use this node as a reference; its models are then announced as able to score (docs/operator-backends.md).",
  },
  {
    key: "score_eos_token_ids",
    env: "TESSERA_SCORE_EOS_TOKEN_IDS",
    default: "",
    description:
      "The served model's end-of-sequence token ids, scored after an answer that stopped (comma-separated). vLLM: read from GET /tokenizer_info (--enable-tokenizer-info-endpoint) when empty; SGLang: required with reference_scoring.",
  },
  { key: "probe_timeout_ms", env: "TESSERA_PROBE_TIMEOUT_MS", default: "1500", description: "How long each backend probe waits at daemon start." },
];

/** Default ports by kind, used when a host setting names no port. */
export const DEFAULT_PORTS = { ollama: 11434, vllm: 8000, sglang: 30000, max: 8080, "llama-server": 8080 } as const;

/**
 * Any host spelling → a base URL without trailing slash, following Ollama's reading of `OLLAMA_HOST`:
 * `0.0.0.0:11434` → `http://127.0.0.1:11434` (a listen-all address is reached on loopback), `gpu-box` or
 * `http://gpu-box` → `http://gpu-box:<defaultPort>`, `https://proxy.example/` → `https://proxy.example` (443).
 */
export function normalizeHost(value: string, defaultPort: number): string {
  let v = value.trim();
  if (v === "") throw new Error("empty host");
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(v)) v = `http://${v}`;
  const url = new URL(v);
  if (url.hostname === "0.0.0.0") url.hostname = "127.0.0.1";
  if (url.hostname === "[::]") url.hostname = "[::1]";
  const explicitPort = /^[a-z][a-z0-9+.-]*:\/\/(\[[^\]]*\]|[^/:]*):\d+/i.test(v);
  if (!explicitPort && url.protocol === "http:") url.port = String(defaultPort);
  return url.toString().replace(/\/+$/, "");
}
