import { TesseraError, isErrorCode, signRequest, type Signer } from "@tessera/protocol";

export type FetchLike = (input: string, init: RequestInit) => Promise<Response>;

/** Joins the coordinator base URL (which may carry a base path) with an API path; returns the URL and signed path. */
export function coordinatorUrl(base: string, path: string): { url: string; signedPath: string } {
  const u = new URL(base);
  const prefix = u.pathname.replace(/\/+$/, "");
  const signedPath = `${prefix}${path}`;
  return { url: `${u.origin}${signedPath}`, signedPath };
}

/** The session URL: http→ws, https→wss, same host and base path. */
export function sessionUrl(base: string, path: string): { url: string; signedPath: string } {
  const { url, signedPath } = coordinatorUrl(base, path);
  return { url: url.replace(/^http/, "ws"), signedPath };
}

export interface SignedPostOptions {
  fetch: FetchLike;
  signer: Signer;
  baseUrl: string;
  nowSeconds: () => number;
  signal?: AbortSignal;
}

/**
 * POSTs `body` as JSON, signed over exactly the bytes sent. A non-2xx answer becomes a TesseraError with the
 * coordinator's code; an unreachable coordinator becomes `node_disconnected` (retryable).
 */
export async function signedPost<T>(options: SignedPostOptions, path: string, body: unknown): Promise<T> {
  const { url, signedPath } = coordinatorUrl(options.baseUrl, path);
  const text = JSON.stringify(body);
  const headers = {
    "content-type": "application/json",
    ...signRequest(options.signer, { method: "POST", path: signedPath, body: text }, { nowSeconds: options.nowSeconds() }),
  };
  let response: Response;
  try {
    response = await options.fetch(url, { method: "POST", headers, body: text, signal: options.signal });
  } catch (err) {
    const reason = err instanceof Error ? (err.cause instanceof Error ? err.cause.message : err.message) : String(err);
    throw new TesseraError("node_disconnected", `coordinator ${options.baseUrl} unreachable: ${reason}`, { cause: err });
  }
  const raw = await response.text();
  if (!response.ok) throw errorFromResponse(response.status, raw, response.headers.get("retry-after"));
  try {
    return JSON.parse(raw) as T;
  } catch (err) {
    throw new TesseraError("internal_error", `coordinator answered ${path} with invalid JSON`, { cause: err });
  }
}

export function errorFromResponse(status: number, raw: string, retryAfter?: string | null): TesseraError {
  let code: string | undefined;
  let message = `coordinator answered HTTP ${status}`;
  try {
    const body = JSON.parse(raw) as { error?: unknown; error_message?: unknown };
    if (isErrorCode(body.error)) code = body.error;
    if (typeof body.error_message === "string") message = body.error_message;
  } catch {
    // not our error body (a proxy's HTML page, say): keep the status line
  }
  const fallback = status === 401 ? "unauthorized" : status === 429 ? "rate_limited" : status >= 500 ? "internal_error" : "bad_request";
  const retryAfterSeconds = retryAfter && /^\d+$/.test(retryAfter) ? Number(retryAfter) : undefined;
  return new TesseraError(isErrorCode(code) ? code : fallback, message, { retryAfterSeconds });
}
