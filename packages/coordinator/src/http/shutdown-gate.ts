import type { FastifyInstance } from "fastify";
import { TesseraError } from "@tessera/protocol";

/** What a client that reached a closing coordinator is told to wait: about one restart. */
export const SHUTDOWN_RETRY_AFTER_S = 5;

/**
 * The HTTP edge of a shutdown. Once `stopAccepting()` is called, every new request but a node's own is answered at once with 503
 * `shutting_down` and `Retry-After` (it is never held and then dropped with the connection); the requests that
 * arrived before are counted until their response ends, so the shutdown can wait for their answers (a stream ends
 * when its job is failed with `shutting_down`).
 */
export interface ShutdownGate {
  readonly closing: boolean;
  stopAccepting(): void;
  /** Requests whose response has not ended yet. */
  readonly inFlight: number;
  /**
   * Resolves true once no request is in flight, or false after `timeoutMs`. `poll` runs every few milliseconds
   * meanwhile (to fail jobs that requests in flight submitted after the shutdown began).
   */
  drained(timeoutMs: number, poll?: () => void): Promise<boolean>;
}

const POLL_MS = 20;

/** Registers the gate's onRequest hook; call before the app is ready. */
export function installShutdownGate(app: FastifyInstance): ShutdownGate {
  let closing = false;
  const open = new Set<object>();
  app.addHook("onRequest", async (request, reply) => {
    // A node's own signed requests (heartbeats) are not new work: `tessera up` drains its node after the gate shuts,
    // and that node keeps reporting in until it is done.
    if (closing && request.routeOptions.config.auth !== "node") {
      throw new TesseraError("shutting_down", "the coordinator is shutting down; retry shortly", { retryAfterSeconds: SHUTDOWN_RETRY_AFTER_S });
    }
    const response = reply.raw;
    open.add(response);
    // `close` comes when the response has ended or its connection was cut, whichever is first.
    response.once("close", () => open.delete(response));
  });
  // A request in flight whose job the shutdown failed answers 503 too: with the same Retry-After.
  app.addHook("onSend", async (_request, reply, payload) => {
    if (closing && reply.statusCode === 503 && !reply.hasHeader("retry-after")) reply.header("retry-after", String(SHUTDOWN_RETRY_AFTER_S));
    return payload;
  });
  return {
    get closing() {
      return closing;
    },
    stopAccepting() {
      closing = true;
    },
    get inFlight() {
      return open.size;
    },
    async drained(timeoutMs, poll) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        poll?.();
        if (open.size === 0) return true;
        if (Date.now() >= deadline) return false;
        await new Promise((resolve) => setTimeout(resolve, POLL_MS));
      }
    },
  };
}
