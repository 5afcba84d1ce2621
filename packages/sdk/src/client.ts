import {
  type ErrorCode,
  type JobAccepted,
  type JobList,
  type JobView,
  type ModelsResponse,
  type NodeStatusView,
  type ResponseFormat,
  SseDecoder,
  TesseraError,
  isErrorCode,
} from "@tessera/protocol";

export interface TesseraClientOptions {
  /** Coordinator URL, e.g. http://127.0.0.1:7337 */
  baseUrl: string;
  apiKey?: string;
  fetch?: typeof fetch;
  /** Retries for retryable errors (429, 5xx, network), honouring Retry-After. Default 2. */
  maxRetries?: number;
  /** Waits between retries; injected so tests don't sleep. */
  sleep?: (ms: number) => Promise<void>;
  /**
   * The command an `unreachable` error suggests for starting a coordinator, as the user types it (the CLI passes its
   * own, `npx tessera up` in a checkout). Default `tessera up`.
   */
  startCommand?: string;
}

export interface ChatRequest {
  model: string;
  messages: { role: "system" | "user" | "assistant"; content: string }[];
  max_tokens?: number;
  temperature?: number;
  top_p?: number;
  seed?: number;
  /** The answer must be JSON: `{type: "json_object"}` or `{type: "json_schema", json_schema: {name, schema, strict}}`. */
  response_format?: ResponseFormat;
  node_id?: string;
}

/**
 * Typed client for the coordinator's public API. Errors are `TesseraError`s carrying the server's stable code;
 * retryable ones are retried with backoff that honours `Retry-After`.
 */
export class TesseraClient {
  private readonly fetch: typeof fetch;
  private readonly maxRetries: number;
  private readonly sleep: (ms: number) => Promise<void>;

  constructor(private readonly options: TesseraClientOptions) {
    this.fetch = options.fetch ?? globalThis.fetch;
    this.maxRetries = options.maxRetries ?? 2;
    this.sleep = options.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms)));
  }

  health(): Promise<{ status: string }> {
    return this.json("GET", "/healthz");
  }

  models(): Promise<ModelsResponse> {
    return this.json("GET", "/api/v1/models");
  }

  nodeStatus(nodeId: string): Promise<NodeStatusView> {
    return this.json("GET", `/api/v1/nodes/${encodeURIComponent(nodeId)}/status`);
  }

  submitJob(request: ChatRequest): Promise<JobAccepted> {
    return this.json("POST", "/api/v1/jobs", { ...request, stream: false });
  }

  getJob(id: string): Promise<JobView> {
    return this.json("GET", `/api/v1/jobs/${encodeURIComponent(id)}`);
  }

  listJobs(query: { limit?: number; status?: JobView["status"]; since?: string } = {}): Promise<JobList> {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) if (v !== undefined) params.set(k, String(v));
    const qs = params.toString();
    return this.json("GET", `/api/v1/jobs${qs ? `?${qs}` : ""}`);
  }

  /** Streams a new job's text as it is generated. Throws a TesseraError if the job fails mid-stream. */
  async *streamChat(request: ChatRequest, signal?: AbortSignal): AsyncGenerator<string> {
    const res = await this.request("POST", "/api/v1/jobs", { ...request, stream: true }, signal);
    yield* readNativeStream(res);
  }

  /** Reads a job's stream: what was generated so far, then the live rest. */
  async *streamJob(id: string, signal?: AbortSignal): AsyncGenerator<string> {
    const res = await this.request("GET", `/api/v1/jobs/${encodeURIComponent(id)}/stream`, undefined, signal);
    yield* readNativeStream(res);
  }

  private async json<T>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await this.request(method, path, body);
    return (await res.json()) as T;
  }

  private async request(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<Response> {
    for (let attempt = 0; ; attempt++) {
      let res: Response;
      try {
        res = await this.fetch(this.options.baseUrl.replace(/\/$/, "") + path, {
          method,
          headers: {
            ...(this.options.apiKey ? { authorization: `Bearer ${this.options.apiKey}` } : {}),
            ...(body === undefined ? {} : { "content-type": "application/json" }),
          },
          ...(body === undefined ? {} : { body: JSON.stringify(body) }),
          ...(signal ? { signal } : {}),
        });
      } catch (err) {
        if (signal?.aborted) throw err;
        if (attempt < this.maxRetries) {
          await this.sleep(backoffMs(attempt));
          continue;
        }
        throw new TesseraError("unreachable", `coordinator unreachable at ${this.options.baseUrl}: ${whyUnreachable(err)} (is it running? \`${this.options.startCommand ?? "tessera up"}\` starts one here)`, {
          cause: err,
        });
      }
      if (res.ok) return res;
      const error = await toError(res);
      if (error.retryable && attempt < this.maxRetries) {
        await this.sleep(error.retryAfterSeconds !== undefined ? error.retryAfterSeconds * 1000 : backoffMs(attempt));
        continue;
      }
      throw error;
    }
  }
}

/** Why a request never got an answer, in words: fetch says only "fetch failed" and keeps the reason in `cause`. */
function whyUnreachable(err: unknown): string {
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  switch (cause?.code) {
    case "ECONNREFUSED":
      return "connection refused";
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return "host not found";
    case "ETIMEDOUT":
    case "UND_ERR_CONNECT_TIMEOUT":
      return "connection timed out";
    case "ECONNRESET":
      return "connection reset";
    default:
      return cause?.message ?? (err as Error).message;
  }
}

function backoffMs(attempt: number): number {
  return Math.min(8_000, 250 * 2 ** attempt) * (0.5 + Math.random() / 2);
}

async function toError(res: Response): Promise<TesseraError> {
  const retryAfter = Number(res.headers.get("retry-after"));
  let code: ErrorCode = res.status >= 500 ? "internal_error" : "bad_request";
  let message = `HTTP ${res.status}`;
  try {
    const body = (await res.json()) as { error?: unknown; error_message?: unknown };
    if (isErrorCode(body.error)) code = body.error;
    if (typeof body.error_message === "string") message = body.error_message;
  } catch {
    // Not our error body (a proxy's page, say): keep the status-derived code.
  }
  return new TesseraError(code, message, Number.isFinite(retryAfter) && retryAfter > 0 ? { retryAfterSeconds: retryAfter } : {});
}

async function* readNativeStream(res: Response): AsyncGenerator<string> {
  const decoder = new SseDecoder();
  const text = new TextDecoder();
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    for (const event of decoder.push(text.decode(chunk, { stream: true }))) {
      if (event.data === "[DONE]") return;
      const payload = JSON.parse(event.data) as { text?: string; error?: string; message?: string };
      if (payload.error !== undefined) {
        throw new TesseraError(isErrorCode(payload.error) ? payload.error : "internal_error", payload.message ?? "job failed");
      }
      if (payload.text) yield payload.text;
    }
  }
  throw new TesseraError("node_disconnected", "the stream ended without [DONE]");
}
