import type { Migration, MigrationProvider } from "kysely";
import { initial } from "./0001-initial.js";

/**
 * Every migration, in order, listed in code: nothing is read from disk at runtime. Names sort in application order;
 * add a new file `000N-what.ts` and a line here, and never edit one that has shipped.
 */
const MIGRATIONS: Record<string, Migration> = {
  "0001-initial": initial,
};

export const migrationProvider: MigrationProvider = {
  async getMigrations() {
    return MIGRATIONS;
  },
};
