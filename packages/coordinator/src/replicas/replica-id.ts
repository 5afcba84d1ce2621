import { randomBytes } from "node:crypto";
import { closeSync, openSync, readFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import { TesseraError } from "@tessera/protocol";
import { REPLICA_ID } from "../config.js";
import { ensurePrivateDir } from "../store/file-modes.js";

/**
 * Without `--replica-id`, a coordinator's replica id is made on its first start and kept in `<data dir>/replica-id`
 * (one line, 0600), so a restart is the same replica: it finds and ends the jobs it left unfinished, and no one
 * else's. Random rather than the host name: two coordinators on one machine with their own data dirs get their own
 * ids, and nothing about the machine is written into the shared database. Replicas that share one data dir (to share
 * the content keys) share this file too, so each must be given its own `--replica-id`; the lease refuses the second
 * (replica-lease.ts).
 */
export const REPLICA_ID_FILE = "replica-id";

export function loadOrCreateReplicaId(dataDir: string): string {
  const path = join(dataDir, REPLICA_ID_FILE);
  ensurePrivateDir(dataDir);
  let fd: number | undefined;
  try {
    fd = openSync(path, "wx", 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw fileError(path, err);
  }
  if (fd !== undefined) {
    try {
      writeSync(fd, `r-${randomBytes(5).toString("hex")}\n`);
    } finally {
      closeSync(fd);
    }
  }
  let text: string;
  try {
    text = readFileSync(path, "utf8").trim();
  } catch (err) {
    throw fileError(path, err);
  }
  if (!REPLICA_ID.test(text)) {
    throw new TesseraError("bad_request", `${path} does not hold a replica id (1 to 40 of a-z, 0-9 and -): fix or delete it, or pass --replica-id`);
  }
  return text;
}

function fileError(path: string, err: unknown): TesseraError {
  return new TesseraError("internal_error", `cannot read or create the replica id file ${path}: ${(err as Error).message}`, { cause: err });
}
