import type { Store } from "@tessera/coordinator";
import { loadCoordinatorConfig } from "@tessera/coordinator/config";

/** Opens the store the coordinator at these flags uses: `--db` (or TESSERA_DB) wins, else SQLite in the data dir. */
export async function openStoreFor(options: { dataDir?: string; db?: string }): Promise<Store> {
  const config = loadCoordinatorConfig({ dataDir: options.dataDir, dbUrl: options.db });
  // Loaded here, not at the top: the store pulls in kysely, better-sqlite3 and pg, which `--help` never needs.
  const { openStore, storeOptionsForConfig } = await import("@tessera/coordinator");
  return openStore(storeOptionsForConfig(config));
}
