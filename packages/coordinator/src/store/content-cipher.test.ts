import { existsSync, linkSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { contentKeyId, envelopeKeyId, openContent, sealContent } from "./content-cipher.js";
import { FileKeyRing, MemoryKeyRing } from "./content-keys.js";

const dirs: string[] = [];
const tempDir = () => {
  const dir = mkdtempSync(join(tmpdir(), "tessera-keys-"));
  dirs.push(dir);
  return join(dir, "keys");
};
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe("content cipher", () => {
  it("round-trips any string exactly and binds the ciphertext to its job and column", () => {
    const keys = new MemoryKeyRing();
    const text = "nul \u0000 lone \uD800 emoji 👋🏽";
    const sealed = sealContent(keys, "60000", "job-1", "content", text);
    expect(sealed).not.toContain("emoji");
    expect(openContent(keys, "job-1", "content", sealed)).toBe(text);
    expect(openContent(keys, "job-2", "content", sealed)).toBeUndefined();
    expect(openContent(keys, "job-1", "messages", sealed)).toBeUndefined();
    // Altered anywhere: refused, never garbage.
    const body = sealed.split(".")[2]!;
    const flipped = `${sealed.slice(0, -body.length)}${body.slice(0, 30)}${body[30] === "A" ? "B" : "A"}${body.slice(31)}`;
    expect(openContent(keys, "job-1", "content", flipped)).toBeUndefined();
    expect(openContent(keys, "job-1", "content", "plaintext")).toBeUndefined();
    // Two seals of one value differ (fresh salt and IV).
    expect(sealContent(keys, "60000", "job-1", "content", text)).not.toBe(sealed);
  });

  it("puts content in an expiry bucket about 1/60 of its TTL wide, ending after the expiry", () => {
    const created = 1_700_000_000_000;
    const id = (ttlMs: number) => Number(contentKeyId(created + ttlMs, created));
    for (const [ttl, width] of [[60_000, 60_000], [3_600_000, 60_000], [86_400_000, 900_000], [365 * 86_400_000, 3_600_000]] as const) {
      const end = id(ttl);
      expect(end % width).toBe(0);
      expect(end).toBeGreaterThan(created + ttl);
      expect(end - (created + ttl)).toBeLessThanOrEqual(width);
    }
    expect(contentKeyId(null, created)).toBe("never");
    expect(envelopeKeyId(sealContent(new MemoryKeyRing(), "120000", "j", "content", "x"))).toBe("120000");
  });

  it("destroys ended buckets only, keeps the ones still in use, and then nothing opens", () => {
    const keys = new MemoryKeyRing();
    const early = sealContent(keys, "60000", "a", "content", "early");
    const busy = sealContent(keys, "120000", "b", "content", "busy");
    const late = sealContent(keys, "180000", "c", "content", "late");
    const forever = sealContent(keys, "never", "d", "content", "forever");
    expect(keys.destroyEndedBy(150_000, new Set(["120000"]))).toEqual(["60000"]);
    expect(openContent(keys, "a", "content", early)).toBeUndefined();
    expect(openContent(keys, "b", "content", busy)).toBe("busy");
    expect(keys.destroyEndedBy(10 ** 15, new Set())).toEqual(["120000", "180000"]);
    expect(openContent(keys, "c", "content", late)).toBeUndefined();
    expect(openContent(keys, "d", "content", forever)).toBe("forever");
  });
});

describe("file key ring", () => {
  it("keeps one 0600 file per bucket that a second process sees, and shreds it at the end of the bucket", () => {
    const dir = tempDir();
    const a = new FileKeyRing(dir);
    const b = new FileKeyRing(dir);
    const sealed = sealContent(a, "60000", "j", "content", "secret");
    expect(readdirSync(dir)).toEqual(["60000.key"]);
    expect(statSync(join(dir, "60000.key")).mode & 0o777).toBe(0o600);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(openContent(b, "j", "content", sealed)).toBe("secret");
    // Two rings racing to create the same key agree on it.
    expect(b.keyFor("120000").equals(a.keyFor("120000"))).toBe(true);
    const before = readFileSync(join(dir, "60000.key"));
    expect(b.destroyEndedBy(60_000, new Set()).sort()).toEqual(["60000"]);
    expect(existsSync(join(dir, "60000.key"))).toBe(false);
    expect(before).toHaveLength(32);
    // The other process's cached copy goes at its own next sweep.
    a.destroyEndedBy(60_000, new Set());
    expect(openContent(a, "j", "content", sealed)).toBeUndefined();
    expect(openContent(new FileKeyRing(dir), "j", "content", sealed)).toBeUndefined();
    expect(readdirSync(dir)).toEqual(["120000.key"]);
  });

  it("also destroys a second name a crash left behind while creating a key", () => {
    const dir = tempDir();
    const ring = new FileKeyRing(dir);
    ring.keyFor("60000");
    linkSync(join(dir, "60000.key"), join(dir, "60000.key.123.abcdef.tmp"));
    expect(ring.destroyEndedBy(60_000, new Set())).toEqual(["60000"]);
    expect(readdirSync(dir)).toEqual([]);
  });
});
