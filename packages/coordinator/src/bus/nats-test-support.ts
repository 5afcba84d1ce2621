/** Shared by the tests that need the NATS server at 127.0.0.1:4222; test-only. */
import { randomBytes } from "node:crypto";
import { describe, it } from "vitest";
import { connect } from "@nats-io/transport-node";

export const NATS_URL = "nats://127.0.0.1:4222";
// Test-only read of the environment: on CI the NATS run is mandatory.
const MANDATORY = process.env.CI === "true";

/** `undefined` when NATS answers, else why not. */
export async function probeNats(): Promise<string | undefined> {
  try {
    const nc = await connect({ servers: NATS_URL, timeout: 3_000, maxReconnectAttempts: 0 });
    await nc.flush();
    await nc.close();
    return undefined;
  } catch (err) {
    return err instanceof Error ? err.message || err.name : String(err);
  }
}

/** A replica id no other test run uses, so runs on one server never hear each other's commands. */
export function randomReplicaId(prefix: string): string {
  return `${prefix}-${randomBytes(4).toString("hex")}`;
}

/** Defines `body` when NATS answers; otherwise a skipped suite with a notice (a failing one on CI, where it is mandatory). */
export function describeWithNats(label: string, unreachable: string | undefined, body: () => void): void {
  if (unreachable === undefined) {
    describe(label, body);
  } else if (MANDATORY) {
    describe(label, () => {
      it(`reaches NATS at ${NATS_URL} (mandatory on CI)`, () => {
        throw new Error(`NATS at ${NATS_URL} did not answer: ${unreachable}`);
      });
    });
  } else {
    console.warn(`NOTICE: ${label} skipped: no NATS answered at ${NATS_URL} (${unreachable}).`);
    describe.skip(label, () => {
      it("needs a NATS server", () => {});
    });
  }
}
