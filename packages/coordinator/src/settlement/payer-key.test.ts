import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { readPayerKey } from "./payer-key.js";

const KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";
const dir = mkdtempSync(join(tmpdir(), "tessera-payer-key-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function keyFile(name: string, content: string, mode: number): string {
  const path = join(dir, name);
  writeFileSync(path, content, { mode });
  chmodSync(path, mode); // the umask may have narrowed it
  return path;
}

describe("the payer key file", () => {
  it("is read when only its owner can read it (0600 or 0400), with or without a final newline", async () => {
    expect(await readPayerKey(keyFile("a", `${KEY}\n`, 0o600))).toBe(KEY);
    expect(await readPayerKey(keyFile("b", KEY.toUpperCase().replace("0X", "0x"), 0o400))).toBe(KEY);
  });

  it("is refused when group or others may read it, and the message says how to fix it", async () => {
    for (const mode of [0o644, 0o640, 0o604, 0o660]) {
      const path = keyFile(`loose-${mode.toString(8)}`, KEY, mode);
      await expect(readPayerKey(path)).rejects.toMatchObject({ code: "bad_request", message: `payer key file ${path} has mode ${mode.toString(8)}, which lets others read it: run \`chmod 600 ${path}\`` });
    }
  });

  it("is refused when missing, a directory, or not one line of 0x + 64 hex digits; the message never shows the content", async () => {
    await expect(readPayerKey(join(dir, "missing"))).rejects.toMatchObject({ code: "bad_request", message: /does not exist/ });
    mkdirSync(join(dir, "d"), { mode: 0o700 });
    await expect(readPayerKey(join(dir, "d"))).rejects.toMatchObject({ code: "bad_request", message: /not a regular file/ });
    for (const [name, content] of [
      ["short", KEY.slice(0, 60)],
      ["no-prefix", KEY.slice(2)],
      ["two-lines", `${KEY}\n${KEY}\n`],
      ["mnemonic", "test test test test test test test test test test test junk"],
      ["empty", ""],
    ]) {
      const failure = readPayerKey(keyFile(name, content, 0o600));
      await expect(failure, name).rejects.toMatchObject({ code: "bad_request", message: /malformed: expected one line of 0x \+ 64 hex digits/ });
      await expect(failure).rejects.not.toMatchObject({ message: expect.stringContaining(KEY.slice(2, 20)) });
    }
    await expect(readPayerKey(keyFile("zero", `0x${"0".repeat(64)}`, 0o600))).rejects.toMatchObject({ code: "bad_request", message: /not .*valid secp256k1 private key/ });
  });
});
