import { afterEach, beforeAll, expect, it } from "vitest";
import { createLogger } from "../logger.js";
import type { Bus } from "./bus.js";
import { connect, headers } from "@nats-io/transport-node";
import { MAX_MESSAGE_BYTES, connectNatsBus, type NatsBusOptions } from "./nats-bus.js";
import { NATS_URL, describeWithNats, natsServerBinary, probeNatsServer, randomReplicaId, startNatsServer } from "./nats.test-support.js";

/** Two connections to the real NATS server: a replica never hears what it published itself (noEcho). */
const quiet = createLogger("silent");
let buses: Bus[] = [];

async function bus(options?: NatsBusOptions): Promise<Bus> {
  const b = await connectNatsBus(NATS_URL, randomReplicaId("nats-bus"), quiet, options);
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

  it("carries a message past the server's max_payload in chunks, whole and in order among other publishers' messages", async () => {
    const [a, b, receiver] = [await bus(), await bus(), await bus()];
    const got: Uint8Array[] = [];
    receiver.subscribe(subject, (data) => got.push(Uint8Array.from(data)));
    await receiver.flush();
    // 1 MiB is the server's default max_payload: 5 MiB go in six chunks, interleaved on the subject with B's.
    expect(a.maxPayload()).toBe(1024 * 1024);
    const large = (seed: number, bytes: number) => Uint8Array.from({ length: bytes }, (_, i) => (i * seed + (i >> 12)) & 0xff);
    expect(a.publish(subject, large(7, 5 * 2 ** 20))).toBe("sent");
    expect(b.publish(subject, large(13, 3 * 2 ** 20 + 5))).toBe("sent");
    expect(a.publish(subject, Uint8Array.of(1, 2, 3))).toBe("sent");
    expect(b.publish(subject, large(29, 1024 * 1024))).toBe("sent");
    await until(() => got.length === 4, 10_000);
    const fromA = got.filter((m) => m.length === 5 * 2 ** 20 || m.length === 3);
    expect(fromA.map((m) => m.length)).toEqual([5 * 2 ** 20, 3]);
    expect(Buffer.compare(Buffer.from(fromA[0]!), Buffer.from(large(7, 5 * 2 ** 20)))).toBe(0);
    const fromB = got.filter((m) => m.length !== 5 * 2 ** 20 && m.length !== 3);
    expect(fromB.map((m) => Buffer.compare(Buffer.from(m), Buffer.from(m.length === 1024 * 1024 ? large(29, m.length) : large(13, m.length))))).toEqual([0, 0]);
    expect(fromB.map((m) => m.length)).toEqual([3 * 2 ** 20 + 5, 1024 * 1024]);
  });

  it("drops a message whose chunks do not follow one another, or whose chunk header is malformed, and delivers the next", async () => {
    const receiver = await bus();
    const got: number[] = [];
    receiver.subscribe(subject, (data) => got.push(data.length));
    await receiver.flush();
    const raw = await connect({ servers: NATS_URL });
    try {
      const chunk = (header: string, bytes: number) => {
        const h = headers();
        h.set("Tessera-Chunk", header);
        raw.publish(subject, new Uint8Array(bytes), { headers: h });
      };
      chunk("x.1 0 3", 10);
      chunk("x.1 2 3", 10); // chunk 1 was lost: the message is dropped
      chunk("x.2 1 2", 10); // a message whose first chunk never came
      chunk("x.3 0 1", 10); // one chunk is no chunked message
      chunk("not a header", 10);
      chunk("x.4 0 2", 10);
      chunk("x.4 1 2", 7);
      raw.publish(subject, new Uint8Array(4));
      await raw.flush();
      await until(() => got.length === 2);
      expect(got).toEqual([17, 4]);
    } finally {
      await raw.close();
    }
  });

  it("refuses, without throwing, a message larger than the bus carries and any message once closed", async () => {
    const [sender, receiver] = [await bus({ maxMessageBytes: 3 * 2 ** 20 }), await bus()];
    expect(MAX_MESSAGE_BYTES).toBeGreaterThan(64 * 2 ** 20); // a node session's largest frame, in its envelope
    const got: number[] = [];
    receiver.subscribe(subject, (data) => got.push(data.length));
    await receiver.flush();
    expect(sender.publish(subject, new Uint8Array(3 * 2 ** 20 + 1))).toBe("too_large");
    expect(sender.publish(subject, new Uint8Array(3 * 2 ** 20))).toBe("sent");
    await until(() => got.length === 1);
    expect(got).toEqual([3 * 2 ** 20]);

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
      const [sender, receiver] = [await connectNatsBus(userUrl, "auth-a", quiet, { timeoutMs: 2_000 }), await connectNatsBus(userUrl, "auth-b", quiet, { timeoutMs: 2_000 })];
      buses.push(sender, receiver);
      const got: number[] = [];
      receiver.subscribe("tessera.test.auth", (data) => got.push(data[0]!));
      await receiver.flush();
      sender.publish("tessera.test.auth", Uint8Array.of(7));
      await until(() => got.length === 1);
      expect(got).toEqual([7]);
      buses.push(await connectNatsBus(`nats://t0ken@127.0.0.1:${withToken.port}`, "auth-c", quiet, { timeoutMs: 2_000 }));

      await expect(connectNatsBus(`nats://replica:wrong@127.0.0.1:${withUser.port}`, "auth-d", quiet, { timeoutMs: 2_000 })).rejects.toMatchObject({
        code: "unreachable",
        message: expect.stringMatching(new RegExp(`^could not reach the bus at nats://replica:\\*\\*\\*@127\\.0\\.0\\.1:${withUser.port}: .*Authorization Violation.* \\(the server refused these credentials\\)$`, "i")),
      });
      await expect(connectNatsBus(`nats://127.0.0.1:${withToken.port}`, "auth-e", quiet, { timeoutMs: 2_000 })).rejects.toMatchObject({
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
