import { TesseraError, isErrorCode } from "@tessera/protocol";

/**
 * A coordinator's answer to a signed request, read once for every CLI command that signs its own requests: the JSON
 * body of a 2xx, or a TesseraError with the coordinator's stable code and message (a body that is not ours, such as a
 * proxy's page, keeps the status line).
 */
export function coordinatorAnswer<T>(status: number, raw: string): T {
  if (status >= 200 && status < 300) return JSON.parse(raw) as T;
  let code: string = status === 404 ? "not_found" : status >= 500 ? "internal_error" : "bad_request";
  let message = `coordinator answered HTTP ${status}`;
  try {
    const parsed = JSON.parse(raw) as { error?: unknown; error_message?: unknown };
    if (isErrorCode(parsed.error)) code = parsed.error;
    if (typeof parsed.error_message === "string") message = parsed.error_message;
  } catch {
    // not our error body
  }
  throw new TesseraError(code as never, message);
}
