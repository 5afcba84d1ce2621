import { sql, type Kysely, type Selectable } from "kysely";
import { TesseraError } from "@tessera/protocol";
import { checkKeyText, fromMs, fromMsOrNull, toMs, toMsOrNull } from "./codec.js";
import type { Database, NodeStandingTable, OperatorStandingTable } from "./schema.js";
import type { NodeStandingRecord, OperatorStandingRecord } from "./types.js";

/** The longest completion window stored (trust/completion-tier.ts keeps 200). */
const MAX_OUTCOMES = 200;

function toNodeStanding(row: Selectable<NodeStandingTable>): NodeStandingRecord {
  return {
    nodeId: row.node_id,
    operatorId: row.operator_id,
    outcomes: row.outcomes,
    cheatLogOdds: Number(row.cheat_log_odds),
    checksPassed: Number(row.checks_passed),
    checksFailed: Number(row.checks_failed),
    cooldownUntil: fromMsOrNull(row.cooldown_until),
    offenceStreak: Number(row.offence_streak),
    lastOffenceAt: fromMsOrNull(row.last_offence_at),
    quarantinedAt: fromMsOrNull(row.quarantined_at),
    updatedAt: fromMs(row.updated_at),
  };
}

function toOperatorStanding(row: Selectable<OperatorStandingTable>): OperatorStandingRecord {
  return { operatorId: row.operator_id, completedJobs: Number(row.completed_jobs), updatedAt: fromMs(row.updated_at) };
}

function checkCount(value: number, field: string): void {
  if (!Number.isSafeInteger(value) || value < 0) throw new TesseraError("bad_request", `${field} must be a non-negative integer`);
}

/** One upsert of the whole record: the coordinator's memory is the live copy, so the last write is the truth. */
export async function saveNodeStanding(db: Kysely<Database>, r: NodeStandingRecord): Promise<void> {
  checkKeyText(r.nodeId, "nodeId");
  checkKeyText(r.operatorId, "operatorId");
  if (r.outcomes.length > MAX_OUTCOMES || !/^[01]*$/.test(r.outcomes)) {
    throw new TesseraError("bad_request", `outcomes must be at most ${MAX_OUTCOMES} characters of 0 and 1`);
  }
  if (!Number.isFinite(r.cheatLogOdds)) throw new TesseraError("bad_request", "cheatLogOdds must be finite");
  checkCount(r.checksPassed, "checksPassed");
  checkCount(r.checksFailed, "checksFailed");
  checkCount(r.offenceStreak, "offenceStreak");
  const row = {
    node_id: r.nodeId,
    operator_id: r.operatorId,
    outcomes: r.outcomes,
    cheat_log_odds: r.cheatLogOdds,
    checks_passed: r.checksPassed,
    checks_failed: r.checksFailed,
    cooldown_until: toMsOrNull(r.cooldownUntil, "cooldownUntil"),
    offence_streak: r.offenceStreak,
    last_offence_at: toMsOrNull(r.lastOffenceAt, "lastOffenceAt"),
    quarantined_at: toMsOrNull(r.quarantinedAt, "quarantinedAt"),
    updated_at: toMs(r.updatedAt, "updatedAt"),
  };
  const { node_id: _key, ...update } = row;
  await db
    .insertInto("node_standing")
    .values(row)
    .onConflict((oc) => oc.column("node_id").doUpdateSet(update))
    .execute();
}

export async function listNodeStandings(db: Kysely<Database>): Promise<NodeStandingRecord[]> {
  const rows = await db.selectFrom("node_standing").selectAll().orderBy("node_id").execute();
  return rows.map(toNodeStanding);
}

export async function addOperatorCompletedJobs(db: Kysely<Database>, operatorId: string, count: number, at: Date): Promise<number> {
  checkKeyText(operatorId, "operatorId");
  if (!Number.isSafeInteger(count) || count < 1) throw new TesseraError("bad_request", "count must be a positive integer");
  const row = await db
    .insertInto("operator_standing")
    .values({ operator_id: operatorId, completed_jobs: count, updated_at: toMs(at, "at") })
    .onConflict((oc) =>
      oc.column("operator_id").doUpdateSet({
        completed_jobs: sql<number>`operator_standing.completed_jobs + excluded.completed_jobs`,
        updated_at: sql<number>`excluded.updated_at`,
      }),
    )
    .returning("completed_jobs")
    .executeTakeFirstOrThrow();
  return Number(row.completed_jobs);
}

export async function listOperatorStandings(db: Kysely<Database>): Promise<OperatorStandingRecord[]> {
  const rows = await db.selectFrom("operator_standing").selectAll().orderBy("operator_id").execute();
  return rows.map(toOperatorStanding);
}
