import { describe, expect, it } from "vitest";
import { GroupCommit } from "./group-commit.js";

describe("GroupCommit", () => {
  it("writes calls that arrive together in one batch, each caller getting its own result", async () => {
    const batches: number[][] = [];
    const group = new GroupCommit<number, number>(
      async (items) => {
        batches.push([...items]);
        return items.map((i) => i * 10);
      },
      async () => {
        throw new Error("not used");
      },
    );
    expect(await Promise.all([1, 2, 3].map((i) => group.add(i)))).toEqual([10, 20, 30]);
    expect(batches).toEqual([[1, 2, 3]]);
    expect(await group.add(4)).toBe(40);
    expect(batches).toEqual([[1, 2, 3], [4]]);
  });

  it("retries a failed batch item by item, so only the item that fails fails", async () => {
    const group = new GroupCommit<number, string>(
      async () => {
        throw new Error("batch refused");
      },
      async (item) => {
        if (item === 2) throw new Error("two is short of funds");
        return `ok ${item}`;
      },
    );
    const results = await Promise.allSettled([1, 2, 3].map((i) => group.add(i)));
    expect(results.map((r) => (r.status === "fulfilled" ? r.value : (r.reason as Error).message))).toEqual(["ok 1", "two is short of funds", "ok 3"]);
  });

  it("splits a long queue into batches of at most maxBatch", async () => {
    const sizes: number[] = [];
    const group = new GroupCommit<number, number>(
      async (items) => {
        sizes.push(items.length);
        return [...items];
      },
      async (i) => i,
      4,
    );
    await Promise.all(Array.from({ length: 10 }, (_, i) => group.add(i)));
    expect(sizes).toEqual([4, 4, 2]);
  });
});
