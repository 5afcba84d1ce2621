import type { Migration, MigrationProvider } from "kysely";
import { initial } from "./0001-initial.js";
import { encryptedContent } from "./0002-encrypted-content.js";
import { operators } from "./0003-operators.js";
import { nodeStanding } from "./0004-node-standing.js";
import { resultCommitments } from "./0005-result-commitments.js";
import { quarantineReleases } from "./0006-quarantine-releases.js";
import { payments } from "./0007-payments.js";
import { replicas } from "./0008-replicas.js";
import { coordinatorSettings } from "./0009-coordinator-settings.js";
import { nodeHolder } from "./0010-node-holder.js";

/**
 * Every migration, in order, listed in code: nothing is read from disk at runtime. Names sort in application order;
 * add a new file `000N-what.ts` and a line here, and never edit one that has shipped.
 */
const MIGRATIONS: Record<string, Migration> = {
  "0001-initial": initial,
  "0002-encrypted-content": encryptedContent,
  "0003-operators": operators,
  "0004-node-standing": nodeStanding,
  "0005-result-commitments": resultCommitments,
  "0006-quarantine-releases": quarantineReleases,
  "0007-payments": payments,
  "0008-replicas": replicas,
  "0009-coordinator-settings": coordinatorSettings,
  "0010-node-holder": nodeHolder,
};

export const FIRST_MIGRATION = "0001-initial";
/** The migration after which plaintext left over from earlier versions must be scrubbed from the files. */
export const SCRUB_AFTER = "0002-encrypted-content";

export const migrationProvider: MigrationProvider = {
  async getMigrations() {
    return MIGRATIONS;
  },
};
