import type { Kysely, Selectable } from "kysely";
import type { GpuStats, Hardware, ServedModel } from "@tessera/protocol";
import { fromJson, fromMs, fromMsOrNull, toJson, toMs, toMsOrNull } from "./codec.js";
import type { Database, NodesTable } from "./schema.js";
import type { NodeHeartbeatState, NodeRecord, NodeRegistration, NodeStatus } from "./types.js";

function toNodeRecord(row: Selectable<NodesTable>): NodeRecord {
  return {
    id: row.id,
    version: row.version,
    hardware: fromJson<Hardware>(row.hardware),
    models: fromJson<ServedModel[]>(row.models),
    maxConcurrency: row.max_concurrency,
    status: row.status as NodeStatus,
    registeredAt: fromMs(row.registered_at),
    updatedAt: fromMs(row.updated_at),
    statusChangedAt: fromMs(row.status_changed_at),
    lastSeenAt: fromMsOrNull(row.last_seen_at),
    lastHeartbeatAt: fromMsOrNull(row.last_heartbeat_at),
    gpus: fromJson<GpuStats[]>(row.gpus),
    loadedModels: fromJson<string[]>(row.loaded_models),
    activeJobs: row.active_jobs,
    draining: row.draining !== 0,
    operatorId: row.operator_id ?? row.id,
    delegationExpiresAt: fromMsOrNull(row.delegation_expires_at),
    retiredAt: fromMsOrNull(row.retired_at),
    successorId: row.successor_id,
  };
}

export async function upsertNode(db: Kysely<Database>, reg: NodeRegistration, at: Date): Promise<NodeRecord> {
  const now = toMs(at, "at");
  const row = await db
    .insertInto("nodes")
    .values({
      id: reg.id,
      version: reg.version,
      hardware: toJson(reg.hardware),
      models: toJson(reg.models),
      max_concurrency: reg.maxConcurrency,
      status: "offline",
      registered_at: now,
      updated_at: now,
      status_changed_at: now,
      last_seen_at: null,
      last_heartbeat_at: null,
      gpus: "[]",
      loaded_models: "[]",
      active_jobs: 0,
      draining: 0,
      operator_id: reg.operatorId,
      delegation_expires_at: toMsOrNull(reg.delegationExpiresAt, "delegationExpiresAt"),
      retired_at: null,
      successor_id: null,
    })
    // Re-registration refreshes the announcement only; liveness and status belong to heartbeats and sessions.
    .onConflict((oc) =>
      oc.column("id").doUpdateSet((eb) => ({
        operator_id: eb.ref("excluded.operator_id"),
        delegation_expires_at: eb.ref("excluded.delegation_expires_at"),
        version: eb.ref("excluded.version"),
        hardware: eb.ref("excluded.hardware"),
        models: eb.ref("excluded.models"),
        max_concurrency: eb.ref("excluded.max_concurrency"),
        updated_at: eb.ref("excluded.updated_at"),
      })),
    )
    .returningAll()
    .executeTakeFirstOrThrow();
  return toNodeRecord(row);
}

export async function recordHeartbeat(
  db: Kysely<Database>,
  nodeId: string,
  state: NodeHeartbeatState,
  at: Date,
): Promise<boolean> {
  const now = toMs(at, "at");
  const result = await db
    .updateTable("nodes")
    .set((eb) => ({
      gpus: toJson(state.gpus),
      loaded_models: toJson(state.loadedModels),
      ...(state.models !== undefined ? { models: toJson(state.models) } : {}),
      active_jobs: state.activeJobs,
      max_concurrency: state.maxConcurrency,
      draining: state.draining ? 1 : 0,
      last_heartbeat_at: now,
      last_seen_at: now,
      updated_at: now,
      // Keep the moment the node came online, not the moment of its latest heartbeat.
      status_changed_at: eb.case().when("status", "=", "online").then(eb.ref("status_changed_at")).else(now).end(),
      status: "online",
    }))
    .where("id", "=", nodeId)
    .executeTakeFirst();
  return Number(result.numUpdatedRows) > 0;
}

export async function setNodeStatus(db: Kysely<Database>, nodeId: string, status: NodeStatus, at: Date, replicaId?: string): Promise<boolean> {
  const now = toMs(at, "at");
  let update = db
    .updateTable("nodes")
    .set((eb) => ({
      status,
      updated_at: now,
      status_changed_at: eb.case().when("status", "=", status).then(eb.ref("status_changed_at")).else(now).end(),
      held_by: status === "online" ? (replicaId ?? null) : null,
      // A session coming up is a sign of life: the registry's silence sweep measures from here.
      ...(status === "online" ? { last_seen_at: now } : {}),
    }))
    .where("id", "=", nodeId);
  // Offline only where this replica holds the node or nobody does: another replica's session is not this one's to end.
  if (status === "offline" && replicaId !== undefined) update = update.where((eb) => eb.or([eb("held_by", "is", null), eb("held_by", "=", replicaId)]));
  const result = await update.executeTakeFirst();
  return Number(result.numUpdatedRows) > 0;
}

export async function getNode(db: Kysely<Database>, id: string): Promise<NodeRecord | undefined> {
  const row = await db.selectFrom("nodes").selectAll().where("id", "=", id).executeTakeFirst();
  return row ? toNodeRecord(row) : undefined;
}

export async function listNodes(db: Kysely<Database>, filter: { status?: NodeStatus } = {}): Promise<NodeRecord[]> {
  let query = db.selectFrom("nodes").selectAll();
  if (filter.status !== undefined) query = query.where("status", "=", filter.status);
  const rows = await query.orderBy("id").execute();
  return rows.map(toNodeRecord);
}

export async function retireNodeKey(db: Kysely<Database>, nodeId: string, successorId: string, at: Date): Promise<boolean> {
  const result = await db
    .updateTable("nodes")
    .set({ retired_at: toMs(at, "at"), successor_id: successorId, updated_at: toMs(at, "at") })
    .where("id", "=", nodeId)
    .where("retired_at", "is", null)
    .executeTakeFirst();
  return Number(result.numUpdatedRows) > 0;
}

export async function offlineNodesOfDeadReplicas(db: Kysely<Database>, self: string, liveSince: Date, now: Date): Promise<string[]> {
  const nowMs = toMs(now, "now");
  const live = toMs(liveSince, "liveSince");
  const rows = await db
    .updateTable("nodes")
    .set((eb) => ({ status: "offline", held_by: null, updated_at: nowMs, status_changed_at: eb.case().when("status", "=", "offline").then(eb.ref("status_changed_at")).else(nowMs).end() }))
    .where("status", "=", "online")
    .where("held_by", "is not", null)
    .where("held_by", "<>", self)
    .where((eb) =>
      eb.not(eb.exists(eb.selectFrom("coordinator_replicas as r").select("r.id").whereRef("r.id", "=", "nodes.held_by").where("r.last_seen_at", ">=", live))),
    )
    .returning("id")
    .execute();
  return rows.map((r) => r.id).sort();
}
