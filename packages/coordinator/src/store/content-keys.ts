import { randomBytes } from "node:crypto";
import { closeSync, fsyncSync, linkSync, openSync, readFileSync, readdirSync, unlinkSync, writeSync } from "node:fs";
import { join } from "node:path";
import { TesseraError } from "@tessera/protocol";
import { ensurePrivateDir, ensurePrivateFile, PRIVATE_FILE_MODE, type ModeFixLog } from "./file-modes.js";

/**
 * The keys that job content is encrypted under, one per expiry bucket, named by the instant the bucket ends (epoch
 * ms, or `never` for content without an expiry). They live outside the database, so no copy of the database (its
 * WAL, freed pages, PostgreSQL's dead tuples, a dump or a backup) ever holds a usable key. See design.md.
 */
export interface ContentKeyRing {
  /** The key `id` names, created if it does not exist yet. */
  keyFor(id: string): Buffer;
  /** The key `id` names, or `undefined` when it was destroyed (or never made here). */
  find(id: string): Buffer | undefined;
  /**
   * Destroys every bucket key whose bucket ended at or before `now`, except the `keep` ones (buckets still used by
   * unfinished jobs). Returns the ids destroyed.
   */
  destroyEndedBy(now: number, keep: ReadonlySet<string>): string[];
}

export const NEVER_EXPIRES = "never";
const KEY_BYTES = 32;
const KEY_ID = /^(?:\d{1,16}|never)$/;

function checkId(id: string): void {
  if (!KEY_ID.test(id)) throw new TesseraError("internal_error", `bad content key id "${id}"`);
}

function endedBy(id: string, now: number, keep: ReadonlySet<string>): boolean {
  return id !== NEVER_EXPIRES && Number(id) <= now && !keep.has(id);
}

/** Keys held only in this process (`:memory:` databases and tests): they die with it. */
export class MemoryKeyRing implements ContentKeyRing {
  private readonly keys = new Map<string, Buffer>();

  keyFor(id: string): Buffer {
    checkId(id);
    let key = this.keys.get(id);
    if (!key) this.keys.set(id, (key = randomBytes(KEY_BYTES)));
    return key;
  }

  find(id: string): Buffer | undefined {
    return this.keys.get(id);
  }

  destroyEndedBy(now: number, keep: ReadonlySet<string>): string[] {
    const destroyed: string[] = [];
    for (const [id, key] of this.keys) {
      if (!endedBy(id, now, keep)) continue;
      key.fill(0);
      this.keys.delete(id);
      destroyed.push(id);
    }
    return destroyed;
  }
}

/**
 * One 32-byte file per key (`<id>.key`, 0600) in a 0700 directory, so a coordinator and the CLI (or replicas
 * sharing the directory) see the same keys. A key is created with link(2), which is atomic: two processes racing to
 * create it agree on the winner's. A destroyed key is overwritten with random bytes, flushed, then unlinked.
 */
export class FileKeyRing implements ContentKeyRing {
  private readonly cache = new Map<string, Buffer>();

  constructor(
    private readonly dir: string,
    log?: ModeFixLog,
  ) {
    ensurePrivateDir(dir, log);
    for (const name of readdirSync(dir)) ensurePrivateFile(join(dir, name), log);
  }

  keyFor(id: string): Buffer {
    const found = this.find(id);
    if (found) return found;
    const path = this.path(id);
    const tmp = `${path}.${process.pid}.${randomBytes(6).toString("hex")}.tmp`;
    const key = randomBytes(KEY_BYTES);
    writeKeyFile(tmp, key);
    try {
      linkSync(tmp, path);
      // tmp and path are now one inode: drop the second name only, never overwrite it.
      unlinkSync(tmp);
    } catch (err) {
      // Lost the race (EEXIST) or failed: this key was never used, destroy it.
      shred(tmp);
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    }
    key.fill(0);
    // Whoever won the race, the file now holds the key everyone uses.
    const stored = this.find(id);
    if (!stored) throw new TesseraError("internal_error", `content key ${id} vanished while being created`);
    return stored;
  }

  find(id: string): Buffer | undefined {
    checkId(id);
    const cached = this.cache.get(id);
    if (cached) return cached;
    let key: Buffer;
    try {
      key = readFileSync(this.path(id));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw err;
    }
    if (key.length !== KEY_BYTES) return undefined;
    this.cache.set(id, key);
    return key;
  }

  destroyEndedBy(now: number, keep: ReadonlySet<string>): string[] {
    const destroyed: string[] = [];
    for (const name of readdirSync(this.dir)) {
      // `<id>.key`, or `<id>.key.<pid>.<random>.tmp` left by a crash mid-creation (possibly a second name of the key).
      const match = /^(\d{1,16}|never)\.key(\.[0-9a-z.]+\.tmp)?$/.exec(name);
      const id = match?.[1];
      if (id === undefined || !endedBy(id, now, keep)) continue;
      shred(join(this.dir, name));
      if (match![2] !== undefined) continue;
      this.cache.get(id)?.fill(0);
      this.cache.delete(id);
      destroyed.push(id);
    }
    // A key another process destroyed may still sit in this cache.
    for (const [id, key] of this.cache) {
      if (!endedBy(id, now, keep)) continue;
      key.fill(0);
      this.cache.delete(id);
    }
    return destroyed;
  }

  private path(id: string): string {
    return join(this.dir, `${id}.key`);
  }
}

function writeKeyFile(path: string, key: Buffer): void {
  const fd = openSync(path, "wx", PRIVATE_FILE_MODE);
  try {
    writeSync(fd, key);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * Overwrites a key file in place, flushes, and unlinks it. On a plain ext4/xfs file this replaces the key's blocks;
 * copy-on-write filesystems and SSD wear levelling may keep old blocks, which is why design.md says to keep the key
 * directory out of backups and, for the strongest guarantee, on tmpfs.
 */
function shred(path: string): void {
  let fd: number;
  try {
    fd = openSync(path, "r+");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
    throw err;
  }
  try {
    writeSync(fd, randomBytes(KEY_BYTES), 0, KEY_BYTES, 0);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  try {
    unlinkSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
}
