import { randomBytes } from "node:crypto";
import { sha256Hex } from "@tessera/protocol";

/** API tokens are shown once at creation; only their SHA-256 is stored. */
export const TOKEN_PREFIX = "tsk_";

export function generateApiToken(): string {
  return TOKEN_PREFIX + randomBytes(24).toString("base64url");
}

export function hashApiToken(token: string): string {
  return sha256Hex(token);
}
