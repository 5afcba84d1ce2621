import type { FastifyInstance, FastifyReply } from "fastify";
import { type ErrorCode, ERROR_CODES, TesseraError, errorBody, openAIErrorBody } from "@tessera/protocol";
import { ZodError } from "zod";
import type { Logger } from "../logger.js";

/** The OpenAI-compatible routes answer errors in OpenAI's shape; everything else in the native one. */
function isOpenAIRoute(url: string): boolean {
  return url === "/v1" || url.startsWith("/v1/") || url.startsWith("/v1?");
}

export function sendError(reply: FastifyReply, code: ErrorCode, message: string, param?: string): FastifyReply {
  const body = isOpenAIRoute(reply.request.url) ? openAIErrorBody(code, message, param) : errorBody(code, message);
  return reply.code(ERROR_CODES[code].status).type("application/json").send(body);
}

/** The field a zod error is about, as OpenAI names it (`messages.0.content`), or undefined for the body as a whole. */
function zodParam(err: ZodError): string | undefined {
  const path = err.issues[0]?.path;
  return path && path.length > 0 ? path.join(".") : undefined;
}

/** Formats a zod error as one readable line naming each offending field. */
export function describeZodError(err: ZodError): string {
  return err.issues
    .slice(0, 5)
    .map((issue) => `${issue.path.length ? issue.path.join(".") : "body"}: ${issue.message}`)
    .join("; ");
}

/**
 * Errors Fastify raises before routing (a URL that does not decode, e.g. `/api/v1/nodes/%/status`): the same
 * `bad_request` body as every other refusal instead of Fastify's own. Passed as the `frameworkErrors` option.
 */
export function frameworkErrorHandler(err: Error, _request: unknown, reply: FastifyReply): void {
  void sendError(reply, "bad_request", err.message || "bad request");
}

/**
 * Every error leaves as `{"error": code, "error_message": text}`, or on `/v1` as OpenAI's
 * `{"error": {message, type, param, code}}`. A 500 says only `internal_error` and the request id; the cause goes to the
 * log with the same id.
 */
export function installErrorHandling(app: FastifyInstance, logger: Logger): void {
  app.setErrorHandler((err, request, reply) => {
    if (err instanceof TesseraError) {
      if (err.retryAfterSeconds !== undefined) reply.header("retry-after", String(err.retryAfterSeconds));
      return sendError(reply, err.code, err.message, err.param);
    }
    if (err instanceof ZodError) return sendError(reply, "bad_request", describeZodError(err), zodParam(err));
    const e = err as { statusCode?: number; code?: string; message?: string };
    if (e.code === "FST_ERR_CTP_BODY_TOO_LARGE") return sendError(reply, "payload_too_large", "request body is too large");
    if (e.statusCode && e.statusCode >= 400 && e.statusCode < 500) {
      return sendError(reply, "bad_request", e.message ?? "bad request");
    }
    logger.error({ err, request: request.id, url: request.url }, "unhandled error");
    return sendError(reply, "internal_error", `internal error (request ${request.id})`);
  });
  app.setNotFoundHandler((request, reply) => sendError(reply, "not_found", `no route for ${request.method} ${request.url.split("?")[0]}`));
}
