import { Counter, Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import type { Bus } from "./bus.js";
import { countedBus } from "./counted-bus.js";

/** A bus in memory that, as NATS with noEcho, never hands a publisher its own message: `deliver` plays another replica. */
function memoryBus() {
  const handlers = new Map<string, Array<(data: Uint8Array) => void>>();
  const published: Array<[string, Uint8Array]> = [];
  const bus: Bus = {
    publish(subject, data) {
      published.push([subject, data]);
      return "sent";
    },
    subscribe(subject, handler) {
      handlers.set(subject, [...(handlers.get(subject) ?? []), handler]);
      return () => handlers.set(subject, (handlers.get(subject) ?? []).filter((h) => h !== handler));
    },
    maxPayload: () => 1024 * 1024,
    flush: async () => undefined,
    close: async () => undefined,
  };
  return { bus, published, deliver: (subject: string, data: Uint8Array) => handlers.get(subject)?.forEach((h) => h(data)) };
}

function counters() {
  const registry = new Registry();
  return {
    registry,
    busMessages: new Counter({ name: "m", help: "m", labelNames: ["direction", "subject"] as const, registers: [registry] }),
    busBytes: new Counter({ name: "b", help: "b", labelNames: ["direction", "subject"] as const, registers: [registry] }),
    busFaults: new Counter({ name: "f", help: "f", labelNames: ["fault", "subject"] as const, registers: [registry] }),
  };
}

async function value(c: Counter<"direction" | "subject">, direction: string, subject: string): Promise<number> {
  return (await c.get()).values.find((v) => v.labels.direction === direction && v.labels.subject === subject)?.value ?? 0;
}

async function faults(c: Counter<"fault" | "subject">, fault: string, subject: string): Promise<number> {
  return (await c.get()).values.find((v) => v.labels.fault === fault && v.labels.subject === subject)?.value ?? 0;
}

describe("countedBus", () => {
  it("counts what it sends and receives by subject kind, never by replica id, and passes every message through unchanged", async () => {
    const inner = memoryBus();
    const c = counters();
    const bus = countedBus(inner.bus, c);
    const got: Uint8Array[] = [];
    const unsubscribe = bus.subscribe("tessera.v1.c1.replica.r-b.reports", (data) => got.push(data));
    bus.publish("tessera.v1.c1.replica.r-a.commands", new Uint8Array(10));
    bus.publish("tessera.v1.c1.replica.r-c.commands", new Uint8Array(5));
    bus.publish("tessera.v1.c1.beats", new Uint8Array(100));
    inner.deliver("tessera.v1.c1.replica.r-b.reports", new Uint8Array([1, 2, 3]));

    expect(inner.published.map(([s, d]) => [s, d.byteLength])).toEqual([
      ["tessera.v1.c1.replica.r-a.commands", 10],
      ["tessera.v1.c1.replica.r-c.commands", 5],
      ["tessera.v1.c1.beats", 100],
    ]);
    expect(got).toEqual([new Uint8Array([1, 2, 3])]);
    expect(await value(c.busMessages, "sent", "commands")).toBe(2);
    expect(await value(c.busBytes, "sent", "commands")).toBe(15);
    expect(await value(c.busMessages, "sent", "beats")).toBe(1);
    expect(await value(c.busBytes, "sent", "beats")).toBe(100);
    expect(await value(c.busMessages, "received", "reports")).toBe(1);
    expect(await value(c.busBytes, "received", "reports")).toBe(3);
    // Labels name kinds only: no replica id appears in any series.
    expect(await c.registry.metrics()).not.toMatch(/r-[abc]/);

    unsubscribe();
    inner.deliver("tessera.v1.c1.replica.r-b.reports", new Uint8Array([4]));
    expect(got).toHaveLength(1);
    expect(await value(c.busMessages, "received", "reports")).toBe(1);
  });

  it("counts a handler that threw, and leaves the exception to the bus beneath (which logs it and goes on)", async () => {
    const inner = memoryBus();
    const c = counters();
    countedBus(inner.bus, c).subscribe("tessera.v1.c1.replica.r-b.sessions", () => {
      throw new Error("a handler's bug");
    });
    expect(() => inner.deliver("tessera.v1.c1.replica.r-b.sessions", new Uint8Array(1))).toThrow("a handler's bug");
    expect(await faults(c.busFaults, "handler_threw", "sessions")).toBe(1);
  });
});
