import type { FastifyInstance } from "fastify";

/** How long a refused client gets to read its answer before the connection under its unread upload is closed. */
export const LINGER_MS = 1_000;

/**
 * A request refused while its body is still arriving (no credential, too large, too deep, throttled) is answered
 * without reading the rest: the coordinator stops reading, sends the 4xx on a connection it keeps open for a moment,
 * then closes it (a "lingering close"). Neither alternative holds up against an 8 MiB hostile upload: draining reads
 * every byte of it (Node's default after an answer), and closing at once resets the connection under a client that
 * is still sending, which then loses the answer to a broken pipe.
 */
export function installUnreadBodyClose(app: FastifyInstance): void {
  app.addHook("onSend", async (request, reply) => {
    const raw = request.raw;
    if (reply.statusCode < 400 || raw.complete || raw.socket === null) return;
    raw.unpipe();
    raw.pause();
    // Marks the request as being consumed, so Node does not drain ("dump") the rest of it after the answer.
    raw.read(0);
    // Fastify asks to close a connection whose body it could not read; here the close is ours, after the linger.
    reply.removeHeader("connection");
    const socket = raw.socket as { destroy?: () => void };
    // (inject()'s stand-in socket has no destroy: nothing to close there.)
    reply.raw.once("finish", () => setTimeout(() => socket.destroy?.(), LINGER_MS).unref());
  });
}
