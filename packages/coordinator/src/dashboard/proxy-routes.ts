import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { CLIENT_BODY_LIMIT } from "../http/request-guard.js";
import type { SessionGate } from "./session-gate.js";

/** The public API's answer headers the page may need; everything else (cookies, hop-by-hop) stays behind. */
const PASSED_HEADERS = ["content-type", "cache-control", "retry-after", "x-tessera-job-id", "x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"];

/**
 * `/dashboard/api/v1/*` is the public `/api/v1/*` called as the session's API key (a guest, or no session, calls it
 * as an anonymous client, which only an open network serves). The request goes through the coordinator's own
 * routes in process (`inject`), so auth, limits, validation, errors and streaming are exactly the public API's; an
 * event stream is passed on as it is written. The caller's address goes along, so per-address limits still apply.
 *
 * `POST /dashboard/api/openai/chat/completions` is `POST /v1/chat/completions` the same way: the playground's chats
 * with tools, which the native jobs API does not take (tools exist on the OpenAI-compatible route only). Its errors
 * are that route's (OpenAI's `{"error": {message, type, param, code}}`, with the same codes).
 */
export function proxyRoutes(app: FastifyInstance, gate: SessionGate): void {
  const forward = (target: (request: FastifyRequest<{ Params: { "*": string } }>) => string) => async (request: FastifyRequest<{ Params: { "*": string } }>, reply: FastifyReply) => {
    const session = gate.sessionOf(request);
    gate.checkWrite(request, session);
    const query = request.url.includes("?") ? request.url.slice(request.url.indexOf("?")) : "";
    const headers: Record<string, string> = { accept: request.headers.accept ?? "application/json" };
    if (session?.key) headers.authorization = `Bearer ${session.key.token}`;
    if (request.headers["content-type"]) headers["content-type"] = request.headers["content-type"];
    const abort = new AbortController();
    const upstream = await app.inject({
      method: request.method as "GET" | "POST" | "DELETE" | "PUT",
      url: `${target(request)}${query}`,
      headers,
      remoteAddress: request.ip,
      ...(request.method === "GET" || request.method === "HEAD" ? {} : { payload: request.rawBody ?? JSON.stringify(request.body ?? {}) }),
      payloadAsStream: true,
      signal: abort.signal,
    });
    // The browser went away before the answer ended: end the inner request too, so the public route sees its client
    // gone (a streamed job is cancelled). The response's `close`, not the request's: the request closes once its
    // body is read.
    reply.raw.on("close", () => {
      if (reply.raw.writableFinished) return;
      upstream.raw.res.destroy();
      abort.abort();
    });
    reply.code(upstream.statusCode);
    for (const name of PASSED_HEADERS) {
      const value = upstream.headers[name];
      if (value !== undefined) reply.header(name, String(value));
    }
    if (String(upstream.headers["content-type"] ?? "").startsWith("text/event-stream")) reply.header("x-accel-buffering", "no");
    return reply.send(upstream.stream());
  };
  app.route({ method: ["GET", "POST"], url: "/dashboard/api/v1/*", bodyLimit: CLIENT_BODY_LIMIT, handler: forward((request) => `/api/v1/${request.params["*"]}`) });
  app.route({ method: "POST", url: "/dashboard/api/openai/chat/completions", bodyLimit: CLIENT_BODY_LIMIT, handler: forward(() => "/v1/chat/completions") });
}
