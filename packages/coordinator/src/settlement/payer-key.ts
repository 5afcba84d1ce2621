import { open } from "node:fs/promises";
import { TesseraError } from "@tessera/protocol";
import type { Hex } from "viem";
import { privateKeyToAccount } from "viem/accounts";

/**
 * Reads the settlement payer's private key: a file holding `0x` + 64 hex digits on one line. The file must be a
 * regular file that only its owner can read (mode 0600 or stricter): a key others can read is refused, not used.
 * Never logs or echoes the key; error messages name the file, not its content.
 */
export async function readPayerKey(path: string): Promise<Hex> {
  let file;
  try {
    file = await open(path, "r");
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    const why = code === "ENOENT" ? "does not exist" : code === "EACCES" ? "cannot be read (permission denied)" : `cannot be read (${code ?? "unknown error"})`;
    throw new TesseraError("bad_request", `payer key file ${path} ${why}`, { cause });
  }
  try {
    // The mode is checked on the open file, so what is read is the file that was checked.
    const info = await file.stat();
    if (!info.isFile()) throw new TesseraError("bad_request", `payer key file ${path} is not a regular file`);
    // POSIX permission bits only mean something off Windows.
    if (process.platform !== "win32" && (info.mode & 0o077) !== 0) {
      const mode = (info.mode & 0o777).toString(8).padStart(3, "0");
      throw new TesseraError("bad_request", `payer key file ${path} has mode ${mode}, which lets others read it: run \`chmod 600 ${path}\``);
    }
    if (info.size > 1024) throw new TesseraError("bad_request", `payer key file ${path} is malformed: expected one line of 0x + 64 hex digits`);
    const text = (await file.readFile("utf8")).replace(/\r?\n$/, "");
    if (!/^0x[0-9a-fA-F]{64}$/.test(text)) {
      throw new TesseraError("bad_request", `payer key file ${path} is malformed: expected one line of 0x + 64 hex digits`);
    }
    const key = text.toLowerCase() as Hex;
    try {
      privateKeyToAccount(key);
    } catch {
      throw new TesseraError("bad_request", `payer key file ${path} does not hold a valid secp256k1 private key`);
    }
    return key;
  } finally {
    await file.close();
  }
}
