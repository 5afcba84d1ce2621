import type { Kysely, Selectable } from "kysely";
import { fromMs, fromMsOrNull, toMs, toNumber } from "./codec.js";
import type { Database, OperatorsTable } from "./schema.js";
import type { AdmissionRoute, NewOperator, OperatorRecord, OperatorStatus, OperatorSummary } from "./types.js";

function toOperatorRecord(row: Selectable<OperatorsTable>): OperatorRecord {
  return {
    id: row.id,
    status: row.status as OperatorStatus,
    admittedVia: row.admitted_via as AdmissionRoute,
    joinTokenId: row.join_token_id,
    createdAt: fromMs(row.created_at),
    statusChangedAt: fromMs(row.status_changed_at),
    statusReason: row.status_reason,
  };
}

export async function getOperator(db: Kysely<Database>, id: string): Promise<OperatorRecord | undefined> {
  const row = await db.selectFrom("operators").selectAll().where("id", "=", id).executeTakeFirst();
  return row ? toOperatorRecord(row) : undefined;
}

export async function ensureOperator(db: Kysely<Database>, operator: NewOperator): Promise<OperatorRecord> {
  const at = toMs(operator.createdAt, "createdAt");
  await db
    .insertInto("operators")
    .values({
      id: operator.id,
      status: operator.status,
      admitted_via: operator.admittedVia,
      join_token_id: operator.joinTokenId,
      created_at: at,
      status_changed_at: at,
      status_reason: null,
    })
    .onConflict((oc) => oc.column("id").doNothing())
    .execute();
  return (await getOperator(db, operator.id))!;
}

export async function setOperatorStatus(db: Kysely<Database>, id: string, status: OperatorStatus, at: Date, reason: string | null = null): Promise<boolean> {
  const result = await db
    .updateTable("operators")
    .set({ status, status_changed_at: toMs(at, "at"), status_reason: reason })
    .where("id", "=", id)
    .executeTakeFirst();
  return Number(result.numUpdatedRows) > 0;
}

export async function listOperators(db: Kysely<Database>): Promise<OperatorSummary[]> {
  const rows = await db
    .selectFrom("operators")
    .selectAll("operators")
    .select((eb) => eb.selectFrom("nodes").select((n) => n.fn.countAll().as("n")).whereRef("nodes.operator_id", "=", "operators.id").as("node_count"))
    .orderBy("created_at")
    .orderBy("id")
    .execute();
  return rows.map((row) => ({ ...toOperatorRecord(row), nodes: toNumber(row.node_count as number | string | null) }));
}

export async function listOperatorsChangedSince(db: Kysely<Database>, since: Date): Promise<OperatorRecord[]> {
  const rows = await db.selectFrom("operators").selectAll().where("status_changed_at", ">=", toMs(since, "since")).orderBy("status_changed_at").execute();
  return rows.map(toOperatorRecord);
}
