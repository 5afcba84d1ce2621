import type { Kysely, Migration } from "kysely";

/**
 * `nodes.held_by`: the replica holding the node's session while the record says `online` (bus/design.md). A replica
 * records `offline` only for a node it holds (or one nobody does), so its start-up or a late session close never
 * takes offline, in the record, a node another replica serves; a live replica's sweep records a dead replica's nodes
 * offline. Rows written before this have none.
 */
export const nodeHolder: Migration = {
  async up(db: Kysely<any>): Promise<void> {
    await db.schema.alterTable("nodes").addColumn("held_by", "text").execute();
  },

  async down(db: Kysely<any>): Promise<void> {
    await db.schema.alterTable("nodes").dropColumn("held_by").execute();
  },
};
