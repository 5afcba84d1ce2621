import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { type AddressInfo, connect as connectTcp, createServer } from "node:net";
import { delimiter, join } from "node:path";
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
      const socket = connectTcp(port, "127.0.0.1", () => (socket.destroy(), resolve(true)));
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
