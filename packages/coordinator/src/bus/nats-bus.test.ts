import { afterEach, beforeAll, expect, it } from "vitest";
import { createLogger } from "../logger.js";
import type { Bus } from "./bus.js";
import { connectNatsBus } from "./nats-bus.js";
import { NATS_URL, describeWithNats, natsServerBinary, probeNatsServer, randomReplicaId, startNatsServer } from "./nats.test-support.js";

/** Two connections to the real NATS server: a replica never hears what it published itself (noEcho). */
const quiet = createLogger("silent");
let buses: Bus[] = [];

async function bus(): Promise<Bus> {
  const b = await connectNatsBus(NATS_URL, randomReplicaId("nats-bus"), quiet);
  buses.push(b);
  return b;
}

afterEach(async () => {
  for (const b of buses.splice(0)) await b.close();
});

async function until(condition: () => boolean, timeoutMs = 2_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error("timed out");
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

const unreachable = await probeNatsServer();

describeWithNats("the NATS bus", unreachable, () => {
  let subject: string;
  beforeAll(() => {
    subject = `tessera.test.${randomReplicaId("s")}.commands`;
  });

  it("keeps delivering after a handler throws: the message it threw on is lost, the next ones arrive", async () => {
    const [sender, receiver] = [await bus(), await bus()];
    const got: number[] = [];
    receiver.subscribe(subject, (data) => {
      if (data[0] === 1) throw new Error("a handler's bug");
      got.push(data[0]!);
    });
    await receiver.flush();
    sender.publish(subject, Uint8Array.of(1));
    sender.publish(subject, Uint8Array.of(2));
    await sender.flush();
    await until(() => got.length === 1);
    sender.publish(subject, Uint8Array.of(3));
    await until(() => got.length === 2);
    expect(got).toEqual([2, 3]);
  });

  it("refuses, without throwing, a message over the server's max_payload and any message once closed", async () => {
    const [sender, receiver] = [await bus(), await bus()];
    const got: number[] = [];
    receiver.subscribe(subject, (data) => got.push(data.length));
    await receiver.flush();
    // 1 MiB is the server's default max_payload.
    expect(sender.maxPayload()).toBe(1024 * 1024);
    expect(sender.publish(subject, new Uint8Array(1024 * 1024 + 1))).toBe("over_max_payload");
    expect(sender.publish(subject, new Uint8Array(1024 * 1024))).toBe("sent");
    await until(() => got.length === 1);
    expect(got).toEqual([1024 * 1024]);

    await sender.close();
    expect(sender.publish(subject, Uint8Array.of(1))).toBe("closed");
    expect(sender.maxPayload()).toBe(0);
  });
});

const binary = natsServerBinary();

describeWithNats("a NATS server that asks for credentials", binary === undefined ? "nats-server (a binary on PATH or in /usr/sbin, to start one with auth)" : undefined, () => {
  it("connects with the user and password, or the token, the URL holds; refuses wrong or missing ones as unreachable without showing the secret", async () => {
    const withUser = await startNatsServer(binary!, ["--user", "replica", "--pass", "s@cret"]);
    const withToken = await startNatsServer(binary!, ["--auth", "t0ken"]);
    try {
      const userUrl = `nats://replica:s%40cret@127.0.0.1:${withUser.port}`;
      const [sender, receiver] = [await connectNatsBus(userUrl, "auth-a", quiet, 2_000), await connectNatsBus(userUrl, "auth-b", quiet, 2_000)];
      buses.push(sender, receiver);
      const got: number[] = [];
      receiver.subscribe("tessera.test.auth", (data) => got.push(data[0]!));
      await receiver.flush();
      sender.publish("tessera.test.auth", Uint8Array.of(7));
      await until(() => got.length === 1);
      expect(got).toEqual([7]);
      buses.push(await connectNatsBus(`nats://t0ken@127.0.0.1:${withToken.port}`, "auth-c", quiet, 2_000));

      await expect(connectNatsBus(`nats://replica:wrong@127.0.0.1:${withUser.port}`, "auth-d", quiet, 2_000)).rejects.toMatchObject({
        code: "unreachable",
        message: expect.stringMatching(new RegExp(`^could not reach the bus at nats://replica:\\*\\*\\*@127\\.0\\.0\\.1:${withUser.port}: .*Authorization Violation.* \\(the server refused these credentials\\)$`, "i")),
      });
      await expect(connectNatsBus(`nats://127.0.0.1:${withToken.port}`, "auth-e", quiet, 2_000)).rejects.toMatchObject({
        code: "unreachable",
        message: expect.stringContaining("(the server asks for credentials: nats://user:password@host:port or nats://token@host:port)"),
      });
    } finally {
      for (const b of buses.splice(0)) await b.close();
      await withUser.stop();
      await withToken.stop();
    }
  });
});
