import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { loadCoordinatorConfig } from "../src/config.js";
import { storeOptionsForConfig } from "../src/coordinator.js";
import { openStore } from "../src/store/open-store.js";
import type { Store } from "../src/store/types.js";

const mode = (path: string) => statSync(path).mode & 0o777;

let root: string;
let store: Store | undefined;
beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), "tessera-modes-"));
});
afterEach(async () => {
  await store?.close();
  store = undefined;
  rmSync(root, { recursive: true, force: true });
});

/** A job whose content creates a key file; the WAL is checked while the store is open. */
async function useStore(s: Store): Promise<void> {
  await s.insertJob({ id: "j", ownerId: "o", model: "m", messages: [{ role: "user", content: "hi" }], promptSha256: "h", sampling: { max_tokens: 1, temperature: 0, top_p: 1 }, createdAt: new Date(0), contentExpiresAt: new Date(3_600_000) });
}

describe("store file modes", () => {
  it("creates the data dir 0700 and the database, its WAL and shm, the key dir and key files private, whatever the umask", async () => {
    const dataDir = join(root, "a", "data");
    const previous = process.umask(0o022);
    try {
      const lines: string[] = [];
      store = await openStore(storeOptionsForConfig(loadCoordinatorConfig({ dataDir }, {}), (_f, m) => lines.push(m)));
      await useStore(store);
      expect(mode(dataDir)).toBe(0o700);
      for (const name of ["coordinator.db", "coordinator.db-wal", "coordinator.db-shm"]) expect(mode(join(dataDir, name))).toBe(0o600);
      const keyDir = join(dataDir, "content-keys");
      expect(mode(keyDir)).toBe(0o700);
      const keys = readdirSync(keyDir);
      expect(keys.length).toBeGreaterThan(0);
      for (const key of keys) expect(mode(join(keyDir, key))).toBe(0o600);
      // Nothing was loose, so nothing was said.
      expect(lines).toEqual([]);
    } finally {
      process.umask(previous);
    }
  });

  it("tightens a loose data dir, database, WAL, shm, journal, key dir and key file on start, with a log line each", async () => {
    const dataDir = join(root, "data");
    const config = loadCoordinatorConfig({ dataDir }, {});
    store = await openStore(storeOptionsForConfig(config, () => {}));
    await useStore(store);
    await store.close();
    store = undefined;
    // As an earlier version (or a careless copy) left them.
    const keyDir = join(dataDir, "content-keys");
    const loose = [
      [dataDir, 0o755],
      [join(dataDir, "coordinator.db"), 0o644],
      [join(dataDir, "coordinator.db-journal"), 0o644],
      [keyDir, 0o755],
      ...readdirSync(keyDir).map((k) => [join(keyDir, k), 0o644] as const),
    ] as const;
    writeFileSync(join(dataDir, "coordinator.db-journal"), "");
    for (const [path, m] of loose) chmodSync(path, m);
    const lines: { path: unknown; from: unknown }[] = [];
    store = await openStore(storeOptionsForConfig(config, (fields, _message) => lines.push({ path: fields.path, from: fields.from })));
    await useStore(store).catch(() => {}); // the job exists; only the files matter here
    expect(mode(dataDir)).toBe(0o700);
    expect(mode(keyDir)).toBe(0o700);
    for (const name of ["coordinator.db", "coordinator.db-journal", "coordinator.db-wal", "coordinator.db-shm"]) {
      if (existsSync(join(dataDir, name))) expect(mode(join(dataDir, name))).toBe(0o600);
    }
    expect(lines).toContainEqual({ path: dataDir, from: "0755" });
    expect(lines).toContainEqual({ path: join(dataDir, "coordinator.db"), from: "0644" });
    expect(lines).toContainEqual({ path: join(dataDir, "coordinator.db-journal"), from: "0644" });
    expect(lines).toContainEqual({ path: keyDir, from: "0755" });
    for (const key of readdirSync(keyDir)) {
      expect(mode(join(keyDir, key))).toBe(0o600);
      expect(lines).toContainEqual({ path: join(keyDir, key), from: "0644" });
    }
  });

  it("makes the key dir private for PostgreSQL too (the data dir holds the keys)", () => {
    const dataDir = join(root, "pg");
    mkdirSync(dataDir, { mode: 0o755 });
    chmodSync(dataDir, 0o755);
    const options = storeOptionsForConfig(loadCoordinatorConfig({ dataDir, dbUrl: "postgres://127.0.0.1:5432/test" }, {}), () => {});
    expect(options).toMatchObject({ postgresUrl: "postgres://127.0.0.1:5432/test", keyDir: join(dataDir, "content-keys") });
    expect(mode(dataDir)).toBe(0o700);
  });
});
