import { describe, expect, it } from "vitest";
import { AfterIoQueue } from "./after-io-queue.js";

describe("AfterIoQueue", () => {
  it("runs tasks later, in order, one per turn of the event loop", async () => {
    const queue = new AfterIoQueue();
    const ran: string[] = [];
    const done = Promise.all(["a", "b", "c"].map((name) => queue.run(() => ran.push(name))));
    expect(ran).toEqual([]); // never inline: the caller's own work goes first
    // An immediate queued now was queued before the second task's turn, so it runs between the first and the second.
    setImmediate(() => ran.push("io"));
    await done;
    expect(ran).toEqual(["a", "io", "b", "c"]);
  });

  it("gives each caller its task's result or error, and goes on after an error", async () => {
    const queue = new AfterIoQueue();
    const value = queue.run(() => 42);
    const failed = queue.run((): number => {
      throw new Error("bad signature");
    });
    const asynchronous = queue.run(async () => "stored");
    await expect(value).resolves.toBe(42);
    await expect(failed).rejects.toThrow("bad signature");
    await expect(asynchronous).resolves.toBe("stored");
  });

  it("runs a task queued by a task after those queued before it", async () => {
    const queue = new AfterIoQueue();
    const ran: string[] = [];
    let inner: Promise<unknown> | undefined;
    const first = queue.run(() => {
      ran.push("first");
      inner = queue.run(() => ran.push("queued by first"));
    });
    const second = queue.run(() => ran.push("second"));
    await Promise.all([first, second]);
    await inner;
    expect(ran).toEqual(["first", "second", "queued by first"]);
  });
});
