import { closeSync, openSync, readFileSync, statSync, writeSync } from "node:fs";
import { join } from "node:path";
import { type Signer, TesseraError, generateKeyPair, secretKeySigner } from "@tessera/protocol";
import { ensurePrivateDir } from "../store/file-modes.js";
import { wasmSchnorrSigner } from "@tessera/protocol/wasm-schnorr";

/**
 * The platform key: the coordinator's BIP-340 key that countersigns every receipt (docs/receipts.md). Its secret is
 * kept in `<data dir>/platform.key` as one line of 64 lowercase hex digits, mode 0600, made on the coordinator's
 * first start. A file others can read, or whose content is not a key, is refused (never repaired, never replaced:
 * replacing it would orphan every receipt signed so far). The secret is never logged; errors name the file only.
 * Clients pin the public key (`tessera coordinator keys platform`, `GET /api/v1/platform-key`).
 */
export const PLATFORM_KEY_FILE = "platform.key";

export function platformKeyPath(dataDir: string): string {
  return join(dataDir, PLATFORM_KEY_FILE);
}

/** The platform key's signer, made (0600, in a 0700 data dir) when the file does not exist yet. */
export function loadOrCreatePlatformKey(dataDir: string): Signer {
  const path = platformKeyPath(dataDir);
  ensurePrivateDir(dataDir);
  let fd: number | undefined;
  try {
    fd = openSync(path, "wx", 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw keyFileError(path, err);
  }
  if (fd !== undefined) {
    try {
      writeSync(fd, `${generateKeyPair().secretKeyHex}\n`);
    } finally {
      closeSync(fd);
    }
  }
  return wasmSchnorrSigner(readSecret(path));
}

/** The platform public key (hex) held in `dataDir`; `not_found` when the coordinator has not made one yet. */
export function readPlatformPublicKey(dataDir: string): string {
  return secretKeySigner(readSecret(platformKeyPath(dataDir))).publicKeyHex;
}

function readSecret(path: string): string {
  let info;
  try {
    info = statSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") {
      throw new TesseraError("not_found", `no platform key at ${path}: the coordinator makes it when it first starts with this data dir`);
    }
    throw keyFileError(path, err);
  }
  if (!info.isFile()) throw new TesseraError("bad_request", `platform key file ${path} is not a regular file`);
  // POSIX permission bits only mean something off Windows.
  if (process.platform !== "win32" && (info.mode & 0o077) !== 0) {
    const mode = (info.mode & 0o777).toString(8).padStart(4, "0");
    throw new TesseraError("bad_request", `platform key file ${path} has mode ${mode}, which lets others read it: run \`chmod 600 ${path}\``);
  }
  const malformed = () => new TesseraError("bad_request", `platform key file ${path} is malformed: expected one line of 64 hex digits (the secret key)`);
  if (info.size > 256) throw malformed();
  let text: string;
  try {
    text = readFileSync(path, "utf8").replace(/\r?\n$/, "");
  } catch (err) {
    throw keyFileError(path, err);
  }
  if (!/^[0-9a-fA-F]{64}$/.test(text)) throw malformed();
  const secret = text.toLowerCase();
  try {
    secretKeySigner(secret);
  } catch {
    throw new TesseraError("bad_request", `platform key file ${path} does not hold a valid secp256k1 secret key`);
  }
  return secret;
}

function keyFileError(path: string, err: unknown): TesseraError {
  const code = (err as NodeJS.ErrnoException).code;
  const why = code === "EACCES" ? "cannot be read or written (permission denied)" : `cannot be used (${code ?? (err instanceof Error ? err.message : "unknown error")})`;
  return new TesseraError("bad_request", `platform key file ${path} ${why}`, { cause: err });
}
