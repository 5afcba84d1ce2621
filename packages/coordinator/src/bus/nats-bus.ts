import { connect, headers } from "@nats-io/transport-node";
import { TesseraError } from "@tessera/protocol";
import type { Logger } from "../logger.js";
import type { Bus } from "./bus.js";
import { parseBusUrl } from "./bus-url.js";
import { CHUNK_HEADER, ChunkedMessages, chunksOf } from "./nats-chunks.js";

/**
 * The largest message the bus carries: a node session's largest binary frame (64 MiB, session-hub.ts) in its envelope,
 * with room. Past the server's max_payload a message goes in chunks (design.md, "Message size").
 */
export const MAX_MESSAGE_BYTES = 80 * 2 ** 20;
export interface NatsBusOptions {
  /** How long to wait for the server at connect (default 5 s). */
  timeoutMs?: number;
  /** The largest message published (default MAX_MESSAGE_BYTES; tests pass a smaller one). */
  maxMessageBytes?: number;
}

/**
 * Connects to NATS at `url` (`nats://host:port`, with credentials if the server asks for them: bus-url.ts). Fails with a clear error when the server does not answer within
 * `timeoutMs`; after that the client reconnects on its own for as long as the coordinator runs, buffering what is
 * published meanwhile, and logs each disconnect and reconnect.
 *
 * `noEcho`: the server does not send this connection what it published itself. A replica never needs its own
 * messages (it handles its own nodes and jobs directly, and drops its own beats, standing changes and judgments), and
 * its beat is the largest thing on the bus: at 1,000 nodes about 440 KB, which took 6 ms of the event loop to decode
 * each second, only to be dropped (bench/replicas-profile.md).
 */
export async function connectNatsBus(url: string, replicaId: string, logger: Logger, options: NatsBusOptions = {}): Promise<Bus> {
  const { timeoutMs = 5_000, maxMessageBytes = MAX_MESSAGE_BYTES } = options;
  const { server, shown, auth } = parseBusUrl(url);
  const nc = await connect({ servers: server, ...auth, name: `tessera-coordinator-${replicaId}`, timeout: timeoutMs, maxReconnectAttempts: -1, reconnectTimeWait: 250, noEcho: true }).catch(
    (err: unknown) => {
      const why = err instanceof Error ? err.message : String(err);
      const hint = /authorization/i.test(why) ? (auth ? " (the server refused these credentials)" : " (the server asks for credentials: nats://user:password@host:port or nats://token@host:port)") : "";
      throw new TesseraError("unreachable", `could not reach the bus at ${shown}: ${why}${hint}`);
    },
  );
  void (async () => {
    for await (const status of nc.status()) {
      if (status.type === "disconnect" || status.type === "reconnect") logger.warn({ bus: shown, status: status.type }, `bus ${status.type === "disconnect" ? "disconnected" : "reconnected"}`);
    }
  })();
  let chunkedSent = 0;
  return {
    // nats.js throws on a message over the server's max_payload and on a closed or draining connection; the Bus
    // chunks the first (up to maxMessageBytes) and refuses the second, so no caller (a timer, a socket's listener) can
    // crash the process by publishing.
    publish(subject, data) {
      const maxPayload = nc.info?.max_payload;
      if (maxPayload === undefined || nc.isClosed() || nc.isDraining()) {
        logger.warn({ subject, bytes: data.byteLength }, "bus message refused: the bus is closed");
        return "closed";
      }
      if (data.byteLength <= maxPayload) {
        nc.publish(subject, data);
        return "sent";
      }
      if (data.byteLength > maxMessageBytes || !nc.info?.headers) {
        logger.error({ subject, bytes: data.byteLength, max_payload: maxPayload, max_message: maxMessageBytes }, "bus message refused: larger than the bus carries");
        return "too_large";
      }
      // In order, on one connection: NATS delivers one publisher's messages on a subject in the order sent.
      for (const chunk of chunksOf(data, maxPayload, `${replicaId}.${++chunkedSent}`)) {
        const h = headers();
        h.set(CHUNK_HEADER, chunk.header);
        nc.publish(subject, chunk.data, { headers: h });
      }
      return "sent";
    },
    subscribe(subject, handler) {
      const chunks = new ChunkedMessages(maxMessageBytes);
      const sub = nc.subscribe(subject, {
        // nats.js runs the callback inside its parser: an exception there would end its reader loop, and this replica
        // would hear nothing more while it still beats (@nats-io/nats-core 3.x, protocol.js "reader closed").
        callback: (err, msg) => {
          if (err) return logger.warn({ err, subject }, "bus subscription error");
          let data = msg.data;
          const chunk = msg.headers?.get(CHUNK_HEADER);
          if (chunk) {
            const heard = chunks.add(chunk, data, Date.now());
            if (typeof heard === "string") return logger.warn({ subject, chunk }, `bus message dropped: ${heard}`);
            if (heard === undefined) return;
            data = heard;
          }
          try {
            handler(data);
          } catch (thrown) {
            logger.error({ err: thrown, subject }, "a bus message's handler threw; that message is dropped, the subscription goes on");
          }
        },
      });
      return () => sub.unsubscribe();
    },
    maxPayload: () => (nc.isClosed() ? 0 : (nc.info?.max_payload ?? 0)),
    flush: () => nc.flush(),
    async close() {
      await nc.drain().catch(() => nc.close());
    },
  };
}
