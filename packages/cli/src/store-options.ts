import type { Store } from "@tessera/coordinator";
import { loadCoordinatorConfig } from "@tessera/coordinator/config";

/**
 * Opens the store the coordinator at these flags uses: `--db` (or TESSERA_DB) wins, else SQLite in the data dir; the
 * content keys in the same data dir, so the CLI reads what the coordinator wrote. The data dir and the store files
 * are made private (0700/0600); a looser mode that gets tightened is said on stderr, never mixed into the output.
 */
export async function openStoreFor(options: { dataDir?: string; db?: string }): Promise<Store> {
  const config = loadCoordinatorConfig({ dataDir: options.dataDir, dbUrl: options.db });
  // Loaded here, not at the top: the store pulls in kysely, better-sqlite3 and pg, which `--help` never needs.
  const { openStore, storeOptionsForConfig } = await import("@tessera/coordinator");
  return openStore(
    storeOptionsForConfig(config, (fields, message) => {
      process.stderr.write(`${message}: ${JSON.stringify(fields)}\n`);
    }),
  );
}
