import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { TesseraError, publicKeyFromSecret, verifySchnorr } from "@tessera/protocol";
import { PLATFORM_KEY_FILE, loadOrCreatePlatformKey, readPlatformPublicKey } from "./platform-key.js";

let dir: string;
beforeEach(() => (dir = mkdtempSync(join(tmpdir(), "tessera-platform-"))));
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function codeOf(fn: () => unknown): { code: string; message: string } {
  try {
    fn();
  } catch (err) {
    if (err instanceof TesseraError) return { code: err.code, message: err.message };
    throw err;
  }
  throw new Error("did not throw");
}

describe("platform key", () => {
  it("is made on first start (0600 in a 0700 dir) and the same key on every later start", () => {
    const data = join(dir, "data");
    const signer = loadOrCreatePlatformKey(data);
    const path = join(data, PLATFORM_KEY_FILE);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(statSync(data).mode & 0o777).toBe(0o700);
    expect(readFileSync(path, "utf8")).toMatch(/^[0-9a-f]{64}\n$/);
    expect(loadOrCreatePlatformKey(data).publicKeyHex).toBe(signer.publicKeyHex);
    expect(readPlatformPublicKey(data)).toBe(signer.publicKeyHex);
    expect(publicKeyFromSecret(readFileSync(path, "utf8").trim())).toBe(signer.publicKeyHex);
    const digest = new Uint8Array(32).fill(7);
    expect(verifySchnorr(signer.sign(digest), digest, signer.publicKeyHex)).toBe(true);
  });

  it("reading a key that was never made is not_found, and makes nothing", () => {
    expect(codeOf(() => readPlatformPublicKey(dir))).toMatchObject({ code: "not_found", message: expect.stringContaining("first starts") });
    expect(() => statSync(join(dir, PLATFORM_KEY_FILE))).toThrow();
  });

  it("refuses a file others can read, and does not repair or replace it", () => {
    const signer = loadOrCreatePlatformKey(dir);
    const path = join(dir, PLATFORM_KEY_FILE);
    chmodSync(path, 0o644);
    expect(codeOf(() => loadOrCreatePlatformKey(dir))).toEqual({ code: "bad_request", message: `platform key file ${path} has mode 0644, which lets others read it: run \`chmod 600 ${path}\`` });
    expect(codeOf(() => readPlatformPublicKey(dir)).code).toBe("bad_request");
    chmodSync(path, 0o600);
    expect(loadOrCreatePlatformKey(dir).publicKeyHex).toBe(signer.publicKeyHex);
  });

  it.each([
    ["empty", ""],
    ["short", "ab".repeat(31)],
    ["not hex", "zz".repeat(32)],
    ["an npub", "npub1" + "q".repeat(58)],
    ["two lines", `${"11".repeat(32)}\n${"22".repeat(32)}\n`],
    ["too large", "1".repeat(1000)],
  ])("refuses %s content without echoing it", (_name, content) => {
    writeFileSync(join(dir, PLATFORM_KEY_FILE), content, { mode: 0o600 });
    const { code, message } = codeOf(() => loadOrCreatePlatformKey(dir));
    expect(code).toBe("bad_request");
    expect(message).toMatch(/malformed/);
    if (content.length > 0) expect(message).not.toContain(content.slice(0, 20));
  });

  it("refuses a secret that is not a valid secp256k1 key, and a directory in its place", () => {
    writeFileSync(join(dir, PLATFORM_KEY_FILE), "00".repeat(32), { mode: 0o600 });
    expect(codeOf(() => loadOrCreatePlatformKey(dir))).toMatchObject({ code: "bad_request", message: expect.stringContaining("not hold a valid secp256k1") });
    rmSync(join(dir, PLATFORM_KEY_FILE));
    mkdirSync(join(dir, PLATFORM_KEY_FILE), { mode: 0o700 });
    expect(codeOf(() => loadOrCreatePlatformKey(dir))).toMatchObject({ code: "bad_request", message: expect.stringContaining("not a regular file") });
  });

  it("accepts a key written by hand in upper case with a CRLF ending", () => {
    const signer = loadOrCreatePlatformKey(dir);
    const path = join(dir, PLATFORM_KEY_FILE);
    writeFileSync(path, `${readFileSync(path, "utf8").trim().toUpperCase()}\r\n`, { mode: 0o600 });
    expect(readPlatformPublicKey(dir)).toBe(signer.publicKeyHex);
  });
});
