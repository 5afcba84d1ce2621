/** Shared by the tests that need the NATS server at 127.0.0.1:4222; test-only. */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { type AddressInfo, connect, createServer } from "node:net";
import { delimiter, join } from "node:path";
import { describe, it } from "vitest";
import { NATS_URL } from "@tessera/testkit";

export { NATS_URL, probeNatsServer } from "@tessera/testkit";
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

/** The `nats-server` binary (Debian's package puts it in /usr/sbin), or undefined. */
export function natsServerBinary(): string | undefined {
  const dirs = [...(process.env.PATH ?? "").split(delimiter), "/usr/sbin", "/usr/local/sbin", "/usr/local/bin"];
  return dirs.map((dir) => join(dir, "nats-server")).find((path) => existsSync(path));
}

/**
 * A NATS server of this test's own on a free loopback port, started with `args` (its auth options, say); stopped by
 * `stop`. Resolves once it accepts connections.
 */
export async function startNatsServer(binary: string, args: string[]): Promise<{ port: number; stop: () => Promise<void> }> {
  const port = await new Promise<number>((resolve, reject) => {
    const probe = createServer().listen(0, "127.0.0.1", () => {
      const { port } = probe.address() as AddressInfo;
      probe.close(() => resolve(port));
    });
    probe.on("error", reject);
  });
  const child = spawn(binary, ["-a", "127.0.0.1", "-p", String(port), ...args], { stdio: "ignore" });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const deadline = Date.now() + 10_000;
  for (;;) {
    const up = await new Promise<boolean>((resolve) => {
      const socket = connect(port, "127.0.0.1", () => (socket.destroy(), resolve(true)));
      socket.on("error", () => resolve(false));
    });
    if (up) break;
    if (Date.now() > deadline || child.exitCode !== null) {
      child.kill("SIGKILL");
      throw new Error(`nats-server ${args.join(" ")} did not start on port ${port}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return {
    port,
    stop: async () => {
      child.kill("SIGTERM");
      await exited;
    },
  };
}
