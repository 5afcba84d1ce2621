/**
 * The closed set of error codes shared by the coordinator, the daemon, the SDK and the CLI.
 * Each code has exactly one HTTP status and one retryability. Clients branch on `code`, never on message text.
 */
export const ERROR_CODES = {
  unauthorized: { status: 401, retryable: false },
  forbidden: { status: 403, retryable: false },
  /** The node's operator is waiting for the coordinator's owner to approve it; the daemon retries on its own. */
  pending_approval: { status: 403, retryable: true },
  bad_request: { status: 400, retryable: false },
  /**
   * A parameter the backend cannot honour (named in `param`). From a node, before any work: the coordinator moves the
   * job to a node that can. To a client: no node serving the model can.
   */
  unsupported_parameter: { status: 400, retryable: false },
  /** The client's credit does not cover the job's greatest possible cost (held in escrow until it ends). */
  insufficient_funds: { status: 402, retryable: false },
  not_found: { status: 404, retryable: false },
  model_not_found: { status: 404, retryable: false },
  conflict: { status: 409, retryable: false },
  payload_too_large: { status: 413, retryable: false },
  /** The client went away (closed its connection or asked to stop); the job was stopped on the node. */
  cancelled: { status: 499, retryable: false },
  rate_limited: { status: 429, retryable: true },
  internal_error: { status: 500, retryable: true },
  node_disconnected: { status: 502, retryable: true },
  no_capacity: { status: 503, retryable: true },
  /** Client side: the coordinator did not answer at all (refused, unknown host, timed out). No server sends it. */
  unreachable: { status: 503, retryable: true },
  /** The coordinator is shutting down: it takes no new work and ends open streams with this code; retry elsewhere. */
  shutting_down: { status: 503, retryable: true },
  /** The coordinator could not write the record of a job (its database refused or failed); the job was failed. */
  store_error: { status: 500, retryable: true },
  timeout: { status: 504, retryable: true },
} as const satisfies Record<string, { status: number; retryable: boolean }>;

export type ErrorCode = keyof typeof ERROR_CODES;

export const ERROR_CODE_LIST = Object.keys(ERROR_CODES) as ErrorCode[];

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === "string" && Object.hasOwn(ERROR_CODES, value);
}

/** The one error body shape, everywhere: `{"error": code, "error_message": text}`. */
export interface ErrorBody {
  error: ErrorCode;
  error_message: string;
}

export class TesseraError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly retryable: boolean;
  /** Seconds the caller should wait before retrying, when the server said so. */
  readonly retryAfterSeconds: number | undefined;
  /** The request field at fault, when one is (OpenAI's `param`). */
  readonly param: string | undefined;

  constructor(code: ErrorCode, message: string, options: { retryAfterSeconds?: number; cause?: unknown; param?: string } = {}) {
    super(message, { cause: options.cause });
    this.name = "TesseraError";
    this.code = code;
    this.status = ERROR_CODES[code].status;
    this.retryable = ERROR_CODES[code].retryable;
    this.retryAfterSeconds = options.retryAfterSeconds;
    this.param = options.param;
  }

  toBody(): ErrorBody {
    return { error: this.code, error_message: this.message };
  }
}

export function errorBody(code: ErrorCode, message: string): ErrorBody {
  return { error: code, error_message: message };
}

/**
 * The same error in OpenAI's shape, for the `/v1` routes: every OpenAI client shows `message`; `code` and `type` carry
 * the stable code (clients branch on it), `param` names the field at fault or is null.
 */
export interface OpenAIErrorBody {
  error: { message: string; type: ErrorCode; param: string | null; code: ErrorCode };
}

export function openAIErrorBody(code: ErrorCode, message: string, param?: string): OpenAIErrorBody {
  return { error: { message, type: code, param: param ?? null, code } };
}
