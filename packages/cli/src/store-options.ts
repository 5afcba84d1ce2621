import { loadCoordinatorConfig, storeOptionsForConfig } from "@tessera/coordinator";

/** The store the coordinator at these flags uses: `--db` (or TESSERA_DB) wins, else SQLite in the data dir. */
export function storeOptionsFor(options: { dataDir?: string; db?: string }) {
  return storeOptionsForConfig(loadCoordinatorConfig({ dataDir: options.dataDir, dbUrl: options.db }));
}
