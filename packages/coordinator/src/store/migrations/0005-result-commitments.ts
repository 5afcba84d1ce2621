import type { Kysely, Migration } from "kysely";

/**
 * Each segment keeps the node's signed result commitment (protocol result-commitment.ts) when it sent one that matched
 * what was relayed: a digest and a signature, never text, so it outlives the job's content (receipts will carry it).
 */
export const resultCommitments: Migration = {
  async up(db: Kysely<any>): Promise<void> {
    await db.schema.alterTable("job_segments").addColumn("result_commitment", "text").execute();
    await db.schema.alterTable("job_segments").addColumn("result_signature", "text").execute();
  },
};
