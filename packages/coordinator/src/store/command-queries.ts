import type { Kysely, Selectable, Updateable } from "kysely";
import { TesseraError } from "@tessera/protocol";
import { fromMs, mapConstraintError, toMs } from "./codec.js";
import type { Database, NodeCommandsTable } from "./schema.js";
import type {
  NewNodeCommand,
  NodeCommandRecord,
  NodeCommandStatus,
  NodeCommandType,
  NodeCommandUpdate,
} from "./types.js";

const TYPES: readonly NodeCommandType[] = ["model_install", "model_remove"];
const STATUSES: readonly NodeCommandStatus[] = ["queued", "running", "succeeded", "failed"];

function toCommandRecord(row: Selectable<NodeCommandsTable>): NodeCommandRecord {
  return {
    id: row.id,
    nodeId: row.node_id,
    type: row.type as NodeCommandType,
    model: row.model,
    status: row.status as NodeCommandStatus,
    progress: row.progress === null ? null : Number(row.progress),
    error: row.error,
    issuedAt: fromMs(row.issued_at),
    updatedAt: fromMs(row.updated_at),
  };
}

export async function insertNodeCommand(db: Kysely<Database>, command: NewNodeCommand): Promise<NodeCommandRecord> {
  if (!TYPES.includes(command.type)) {
    throw new TesseraError("bad_request", `command type must be one of ${TYPES.join(", ")}`);
  }
  const issuedAt = toMs(command.issuedAt, "issuedAt");
  try {
    const row = await db
      .insertInto("node_commands")
      .values({
        id: command.id,
        node_id: command.nodeId,
        type: command.type,
        model: command.model,
        status: "queued",
        progress: null,
        error: null,
        issued_at: issuedAt,
        updated_at: issuedAt,
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    return toCommandRecord(row);
  } catch (err) {
    throw mapConstraintError(err, {
      conflict: `command ${command.id} already exists`,
      missingParent: `node ${command.nodeId} is not registered`,
    });
  }
}

export async function updateNodeCommand(db: Kysely<Database>, id: string, update: NodeCommandUpdate): Promise<boolean> {
  if (!STATUSES.includes(update.status)) {
    throw new TesseraError("bad_request", `command status must be one of ${STATUSES.join(", ")}`);
  }
  if (update.progress != null && !(update.progress >= 0 && update.progress <= 1)) {
    throw new TesseraError("bad_request", "progress must be between 0 and 1");
  }
  const set: Updateable<NodeCommandsTable> = { status: update.status, updated_at: toMs(update.at, "at") };
  if (update.progress !== undefined) set.progress = update.progress;
  if (update.error !== undefined) set.error = update.error;
  const result = await db.updateTable("node_commands").set(set).where("id", "=", id).executeTakeFirst();
  return Number(result.numUpdatedRows) > 0;
}

export async function getNodeCommand(db: Kysely<Database>, id: string): Promise<NodeCommandRecord | undefined> {
  const row = await db.selectFrom("node_commands").selectAll().where("id", "=", id).executeTakeFirst();
  return row ? toCommandRecord(row) : undefined;
}

export async function listNodeCommands(
  db: Kysely<Database>,
  nodeId: string,
  status?: NodeCommandStatus,
): Promise<NodeCommandRecord[]> {
  let query = db.selectFrom("node_commands").selectAll().where("node_id", "=", nodeId);
  if (status !== undefined) query = query.where("status", "=", status);
  const rows = await query.orderBy("issued_at").orderBy("id").execute();
  return rows.map(toCommandRecord);
}
