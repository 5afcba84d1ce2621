import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll } from "vitest";
import { openStore } from "./open-store.js";
import { defineReplicaContract } from "./replica-contract.test-support.js";
import { defineStoreContract, type StoreHarness } from "./store-contract-suite.js";
import type { Store } from "./types.js";

const dir = mkdtempSync(join(tmpdir(), "tessera-store-"));
let counter = 0;
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const openHarness = async (): Promise<StoreHarness> => {
  // A nested folder proves openStore creates the data dir.
  const path = join(dir, `db-${++counter}`, "coordinator.db");
  let store: Store = await openStore({ sqlitePath: path });
  return {
    store,
    async reopen() {
      await store.close();
      store = await openStore({ sqlitePath: path });
      return store;
    },
    async dispose() {
      await store.close();
    },
  };
};

defineStoreContract("SQLite", openHarness);
defineReplicaContract("SQLite", openHarness);
