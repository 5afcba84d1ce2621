import { TesseraError, type ErrorCode, type ErrorPart } from "@tessera/protocol";

/**
 * How backend failures become Tessera error codes, in one place for every HTTP adapter:
 * - unreachable backend (connection refused, DNS, reset before any answer) → `no_capacity`: this node cannot serve
 *   now, another may;
 * - HTTP 404 → `model_not_found`; 400/422 → `bad_request`; 413 → `payload_too_large`; 429/503 → `no_capacity`;
 *   408/504 → `timeout`; any other status → `internal_error`;
 * - a stream cut or failing mid-way → `internal_error` (retryable: the coordinator continues elsewhere).
 */
export function codeForStatus(status: number): ErrorCode {
  if (status === 404) return "model_not_found";
  if (status === 400 || status === 422) return "bad_request";
  if (status === 413) return "payload_too_large";
  if (status === 429 || status === 503) return "no_capacity";
  if (status === 408 || status === 504) return "timeout";
  return "internal_error";
}

/**
 * The human message inside a backend's error body, whatever its shape: OpenAI's `{"error":{"message"}}`, vLLM /
 * SGLang's top-level `{"object":"error","message"}`, Ollama's and llama-swap's `{"error":"…"}`, FastAPI's
 * `{"detail":…}`, or plain text.
 */
export function backendErrorMessage(body: unknown): string | undefined {
  if (typeof body === "string") return body.trim() || undefined;
  if (body === null || typeof body !== "object") return undefined;
  const o = body as Record<string, unknown>;
  if (typeof o.error === "string") return o.error;
  if (o.error && typeof o.error === "object" && typeof (o.error as Record<string, unknown>).message === "string") {
    return (o.error as { message: string }).message;
  }
  if (o.object === "error" && typeof o.message === "string") return o.message;
  if (typeof o.detail === "string") return o.detail;
  return undefined;
}

/** True when a decoded stream event is an error event (any of the shapes above) rather than a data chunk. */
export function isErrorEvent(event: unknown): boolean {
  if (event === null || typeof event !== "object") return false;
  const o = event as Record<string, unknown>;
  return o.error !== undefined && o.error !== null ? true : o.object === "error";
}

/** Reads a failed response into a TesseraError, naming the backend so an operator knows where to look. */
export async function errorFromResponse(
  backend: string,
  response: Response,
  refine?: (status: number, message: string) => ErrorCode | undefined,
): Promise<TesseraError> {
  const text = await response.text().catch(() => "");
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // plain-text body: keep it as is
  }
  const message = backendErrorMessage(parsed) ?? `HTTP ${response.status}`;
  const code = refine?.(response.status, message) ?? codeForStatus(response.status);
  return new TesseraError(code, `${backend}: ${message}`);
}

/** A fetch that threw: aborted by the caller, timed out, or the backend is unreachable. */
export function errorFromFetchFailure(backend: string, url: string, err: unknown): TesseraError {
  if (err instanceof TesseraError) return err;
  const name = (err as { name?: string } | undefined)?.name;
  if (name === "TimeoutError") return new TesseraError("timeout", `${backend}: no answer from ${url} in time`, { cause: err });
  if (name === "AbortError") return new TesseraError("cancelled", `${backend}: request cancelled`, { cause: err });
  const cause = (err as { cause?: { code?: string; message?: string } } | undefined)?.cause;
  const detail = cause?.code ?? cause?.message ?? (err as Error | undefined)?.message ?? String(err);
  return new TesseraError("no_capacity", `${backend}: unreachable at ${url} (${detail})`, { cause: err });
}

export function errorPart(err: TesseraError): ErrorPart {
  return { type: "error", code: err.code, message: err.message };
}
