import { describe, expect, it } from "vitest";
import { ChunkedMessages, chunksOf } from "./nats-chunks.js";

/** The chunks of a message and their reassembly, without a server (nats-bus.test.ts runs them over the real one). */
describe("chunked bus messages", () => {
  const bytes = (n: number, seed = 3) => Uint8Array.from({ length: n }, (_, i) => (i * seed) & 0xff);

  it("splits a message into chunks under the limit, with room for the header, and puts them back byte for byte", () => {
    const data = bytes(10_000);
    const chunks = chunksOf(data, 3_024, "r.1");
    expect(chunks.map((c) => [c.header, c.data.byteLength])).toEqual([["r.1 0 5", 2_000], ["r.1 1 5", 2_000], ["r.1 2 5", 2_000], ["r.1 3 5", 2_000], ["r.1 4 5", 2_000]]);
    const m = new ChunkedMessages(1_000_000);
    const heard = chunks.map((c) => m.add(c.header, c.data, 0));
    expect(heard.slice(0, 4)).toEqual([undefined, undefined, undefined, undefined]);
    expect(Buffer.compare(Buffer.from(heard[4] as Uint8Array), Buffer.from(data))).toBe(0);
  });

  it("drops a message whose chunks stopped coming for 30 s, and the oldest of 16 being put together when a 17th begins", () => {
    const m = new ChunkedMessages(1_000_000);
    expect(m.add("a.1 0 2", bytes(4), 0)).toBeUndefined();
    expect(m.add("a.1 1 2", bytes(4), 30_001)).toMatch(/does not follow/);
    expect(m.add("b.1 0 2", bytes(4), 0)).toBeUndefined();
    expect(m.add("b.1 1 2", bytes(4), 30_000)).toBeInstanceOf(Uint8Array);

    for (let i = 0; i < 17; i++) expect(m.add(`c.${i} 0 2`, bytes(4), 40_000)).toBeUndefined();
    expect(m.add("c.0 1 2", bytes(4), 40_000)).toMatch(/does not follow/);
    expect(m.add("c.1 1 2", bytes(4), 40_000)).toBeInstanceOf(Uint8Array);
  });

  it("drops a message larger than the bus carries, and malformed headers", () => {
    const m = new ChunkedMessages(10);
    expect(m.add("a.1 0 3", bytes(6), 0)).toBeUndefined();
    expect(m.add("a.1 1 3", bytes(6), 0)).toMatch(/larger than the bus carries/);
    expect(m.add("a.1 2 3", bytes(6), 0)).toMatch(/does not follow/);
    for (const header of ["a.2 0 1", "a.2 2 2", "a.2 -1 2", "no numbers", ""]) expect(m.add(header, bytes(1), 0)).toBe("a malformed chunk header");
  });
});
