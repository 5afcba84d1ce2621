import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openStore } from "./open-store.js";
import { POSTGRES_URL, describeWithPostgres, dropSchema, probePostgres, randomSchema } from "./postgres-test-support.js";
import { defineReplicaContract } from "./replica-contract.test-support.js";
import { defineStoreContract, type StoreHarness } from "./store-contract-suite.js";
import type { Store } from "./types.js";

describeWithPostgres("PostgreSQL at 127.0.0.1:5432", await probePostgres(), () => {
  const openHarness = async (): Promise<StoreHarness> => {
    // A fresh random schema per test, dropped afterwards: runs never see each other's rows.
    const schema = randomSchema();
    // Content keys live outside the database; a directory lets a reopened store read what the first one wrote.
    const keyDir = mkdtempSync(join(tmpdir(), "tessera-pg-keys-"));
    let store: Store = await openStore({ postgresUrl: POSTGRES_URL, schema, keyDir });
    return {
      store,
      async reopen() {
        await store.close();
        store = await openStore({ postgresUrl: POSTGRES_URL, schema, keyDir });
        return store;
      },
      async dispose() {
        await store.close();
        await dropSchema(schema);
        rmSync(keyDir, { recursive: true, force: true });
      },
    };
  };
  defineStoreContract("PostgreSQL", openHarness);
  defineReplicaContract("PostgreSQL", openHarness);
});
