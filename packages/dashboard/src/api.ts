import type { DASHBOARD_CSRF_HEADER } from "@tessera/protocol";

/** The protocol's header name, checked against it at compile time (importing the value would bundle the protocol). */
const CSRF_HEADER: typeof DASHBOARD_CSRF_HEADER = "x-tessera-csrf";

/** An error answer from the coordinator: its stable code (`unauthorized`, `bad_request`, …) and its message. */
export class ApiError extends Error {
  constructor(readonly code: string, message: string, readonly status: number) {
    super(message);
  }
}

let csrfToken: string | undefined;

/** The session's CSRF token, sent with every state-changing request. */
export function setCsrfToken(token: string | undefined): void {
  csrfToken = token;
}

function headersFor(method: string, body: unknown): Record<string, string> {
  const headers: Record<string, string> = { accept: "application/json" };
  if (body !== undefined) headers["content-type"] = "application/json";
  if (method !== "GET" && csrfToken) headers[CSRF_HEADER] = csrfToken;
  return headers;
}

async function errorOf(res: Response): Promise<ApiError> {
  const text = await res.text();
  try {
    const body = JSON.parse(text) as { error?: unknown; error_message?: unknown };
    if (typeof body.error === "string") return new ApiError(body.error, String(body.error_message ?? body.error), res.status);
    // The OpenAI-compatible routes wrap the same code: {"error": {"message", "type", "param", "code"}}.
    const wrapped = body.error as { message?: unknown; code?: unknown } | undefined;
    if (typeof wrapped?.code === "string") return new ApiError(wrapped.code, String(wrapped.message ?? wrapped.code), res.status);
  } catch {
    // not JSON: fall through
  }
  return new ApiError("internal_error", `${res.status} ${res.statusText}`, res.status);
}

/** A JSON call to the coordinator, same-origin with the session cookie; throws `ApiError` on an error answer. */
export async function api<T>(method: "GET" | "POST" | "PUT" | "DELETE", path: string, body?: unknown): Promise<T> {
  const res = await fetch(path, { method, headers: headersFor(method, body), credentials: "same-origin", ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
  if (!res.ok) throw await errorOf(res);
  if (res.status === 204) return undefined as T;
  return (await res.json()) as T;
}

/** Opens a streaming call (an event stream answer); throws `ApiError` when the answer is an error. */
export async function openStream(method: "GET" | "POST", path: string, body: unknown, signal: AbortSignal): Promise<Response> {
  const res = await fetch(path, {
    method,
    headers: { ...headersFor(method, body), accept: "text/event-stream" },
    credentials: "same-origin",
    signal,
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  if (!res.ok) throw await errorOf(res);
  return res;
}

/** The `data:` payloads of an event stream as they arrive (comments and keep-alives skipped). */
export async function* sseData(res: Response): AsyncGenerator<string> {
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value.replace(/\r\n/g, "\n");
    let end: number;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = block
        .split("\n")
        .filter((line) => line.startsWith("data:"))
        .map((line) => line.slice(5).replace(/^ /, ""))
        .join("\n");
      if (data) yield data;
    }
  }
}

/** A message a person can act on, for an error of any kind. */
export function describeError(err: unknown): string {
  if (err instanceof ApiError) return `${err.message} (${err.code})`;
  if (err instanceof Error) return err.message;
  return String(err);
}
