import { connect } from "@nats-io/transport-node";
import { NATS_URL } from "./scratch-database.js";

/** `undefined` when the NATS server answers at NATS_URL, else why not. */
export async function probeNatsServer(): Promise<string | undefined> {
  try {
    const nc = await connect({ servers: NATS_URL, timeout: 3_000, maxReconnectAttempts: 0 });
    await nc.flush();
    await nc.close();
    return undefined;
  } catch (err) {
    return `NATS at ${NATS_URL}: ${err instanceof Error ? err.message || err.name : String(err)}`;
  }
}
