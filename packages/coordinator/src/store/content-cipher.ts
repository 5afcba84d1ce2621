import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import { NEVER_EXPIRES, type ContentKeyRing } from "./content-keys.js";
import { storableText } from "./storable-text.js";

/**
 * Job content (prompt messages, output text) at rest: AES-256-GCM under the key of the job's expiry bucket, with a
 * random 96-bit IV per value. A bucket key seals at most a few values per job for at most an hour of expiries, far
 * below the 2^32 random-IV invocations NIST SP 800-38D allows per key, so no per-value key derivation is needed (it
 * cost as much as the encryption itself). The value is JSON-encoded first, so every JS string, NUL and lone
 * surrogates included, comes back exactly. The associated data binds a ciphertext to its job, column and key: a value
 * copied into another row or column does not decrypt.
 *
 * Envelope (text, portable on both dialects): `c1.<key id>.<base64url(iv ‖ tag ‖ ciphertext)>`.
 */
const VERSION = "c1";
const IV = 12;
const TAG = 16;

export type ContentField = "messages" | "content";

/**
 * Bucket widths, finest first. A job's bucket is the widest of these that is at most 1/60 of its time to live (one
 * minute for shorter TTLs), so a bucket key outlives the last job in it by under 2 % of the TTL (never by more than
 * an hour), and a key directory holds about 60 files per TTL of traffic, whatever the TTL.
 */
const WIDTHS_MS = [60_000, 300_000, 900_000, 3_600_000];

/** The id of the key for content that expires at `expiresAtMs` and was created at `createdAtMs`. */
export function contentKeyId(expiresAtMs: number | null, createdAtMs: number): string {
  if (expiresAtMs === null) return NEVER_EXPIRES;
  const ttl = Math.max(0, expiresAtMs - createdAtMs);
  let width = WIDTHS_MS[0]!;
  for (const w of WIDTHS_MS) if (w * 60 <= ttl) width = w;
  // The bucket [end - width, end) holds the expiry; its key may go once `end` has passed.
  return String((Math.floor(expiresAtMs / width) + 1) * width);
}

/** Binds a ciphertext to its row: the job id as the database holds it (see storable-text.ts), column and key. */
function aad(jobId: string, field: ContentField, keyId: string): Buffer {
  return Buffer.from(JSON.stringify([VERSION, storableText(jobId), field, keyId]));
}

export function sealContent(keys: ContentKeyRing, keyId: string, jobId: string, field: ContentField, value: unknown): string {
  const iv = randomBytes(IV);
  const cipher = createCipheriv("aes-256-gcm", keys.keyFor(keyId), iv);
  cipher.setAAD(aad(jobId, field, keyId));
  const body = Buffer.concat([cipher.update(JSON.stringify(value), "utf8"), cipher.final()]);
  return `${VERSION}.${keyId}.${Buffer.concat([iv, cipher.getAuthTag(), body]).toString("base64url")}`;
}

/** The key id an envelope names, or `undefined` for anything that is not one. */
export function envelopeKeyId(envelope: string): string | undefined {
  const [version, keyId] = envelope.split(".", 2);
  return version === VERSION ? keyId : undefined;
}

/**
 * The plaintext of an envelope, or `undefined` when it cannot be read: its key was destroyed (the content expired)
 * or never reached this process, or the envelope was altered.
 */
export function openContent<T>(keys: ContentKeyRing, jobId: string, field: ContentField, envelope: string): T | undefined {
  const parts = envelope.split(".");
  if (parts.length !== 3 || parts[0] !== VERSION) return undefined;
  const keyId = parts[1]!;
  let key: Buffer | undefined;
  try {
    key = keys.find(keyId);
  } catch {
    return undefined;
  }
  if (!key) return undefined;
  const raw = Buffer.from(parts[2]!, "base64url");
  if (raw.length < IV + TAG) return undefined;
  try {
    const decipher = createDecipheriv("aes-256-gcm", key, raw.subarray(0, IV));
    decipher.setAAD(aad(jobId, field, keyId));
    decipher.setAuthTag(raw.subarray(IV, IV + TAG));
    const text = Buffer.concat([decipher.update(raw.subarray(IV + TAG)), decipher.final()]).toString("utf8");
    return JSON.parse(text) as T;
  } catch {
    return undefined;
  }
}
