/** Shared by the tests that need the NATS server at 127.0.0.1:4222; test-only. */
import { randomBytes } from "node:crypto";
import { describe, it } from "vitest";
import { NATS_URL } from "@tessera/testkit";

export { NATS_URL, natsServerBinary, probeNatsServer, startNatsServer } from "@tessera/testkit";
// Test-only read of the environment: on CI the NATS run is mandatory.
const MANDATORY = process.env.CI === "true";

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
        throw new Error(`${unreachable} did not answer`);
      });
    });
  } else {
    console.warn(`NOTICE: ${label} skipped: ${unreachable} did not answer.`);
    describe.skip(label, () => {
      it("needs a NATS server", () => {});
    });
  }
}
