import { isErrorCode } from "@tessera/protocol";

/** Exit codes: 1 for errors the user can fix, 2 for usage errors, 3 for network/service errors. */
export const EXIT_USER_ERROR = 1;
export const EXIT_USAGE = 2;
export const EXIT_SERVICE = 3;

export interface TesseraErrorLike {
  code: string;
  message: string;
  retryable?: boolean;
}

export function isTesseraErrorLike(err: unknown): err is TesseraErrorLike {
  return typeof err === "object" && err !== null && "code" in err && isErrorCode((err as { code: unknown }).code);
}

/** Prints `error [code]: message` to stderr and returns the exit code. Branches on codes, never message text. */
export function reportError(err: unknown): number {
  if (isTesseraErrorLike(err)) {
    process.stderr.write(`error [${err.code}]: ${err.message}\n`);
    return err.code === "bad_request" ? EXIT_USAGE : err.retryable ? EXIT_SERVICE : EXIT_USER_ERROR;
  }
  const message = err instanceof Error ? err.message : String(err);
  process.stderr.write(`error: ${message}\n`);
  return EXIT_USER_ERROR;
}
