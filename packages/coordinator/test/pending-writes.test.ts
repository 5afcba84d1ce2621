import { describe, expect, it } from "vitest";
import { PendingWrites } from "../src/pending-writes.js";
import type { Store } from "../src/store/types.js";

describe("PendingWrites", () => {
  it("counts every store call until it settles, failed ones included, and passes results and errors through", async () => {
    const releases: Array<() => void> = [];
    let closed = false;
    const fake = {
      closedFlag: () => closed,
      slow: () => new Promise<string>((resolve) => releases.push(() => resolve("landed"))),
      broken: () => Promise.reject(new Error("refused")),
      close: async () => {
        closed = true;
      },
    };
    const writes = new PendingWrites();
    const store = writes.wrap(fake as unknown as Store) as unknown as typeof fake;
    const slow = store.slow();
    await expect(store.broken()).rejects.toThrow("refused");
    expect(writes.count).toBe(1);
    let settled = false;
    const waiting = writes.settled().then(() => (settled = true));
    await Promise.resolve();
    expect(settled).toBe(false);
    releases[0]!();
    await waiting;
    expect(await slow).toBe("landed");
    expect(writes.count).toBe(0);
    await store.close();
    expect(store.closedFlag()).toBe(true);
  });
});
