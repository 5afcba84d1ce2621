import { randomBytes, randomUUID } from "node:crypto";
import type { Command } from "commander";
import { JOIN_TOKEN_PREFIX, TesseraError, encodeNpub, hashJoinToken, parsePublicKey, parseDuration } from "@tessera/protocol";
import { printJson } from "../output.js";
import { openStoreFor } from "../store-options.js";
import { printedCommand } from "../config.js";

interface StoreFlags {
  dataDir?: string;
  db?: string;
  json?: boolean;
}

/** `--data-dir` and `--db`: which coordinator's store an administration command works on. */
export function withStoreFlags(cmd: Command): Command {
  return cmd.option("--data-dir <dir>", "the coordinator's data dir").option("--db <url>", "postgres://… when the coordinator uses PostgreSQL");
}

async function withStore<T>(flags: StoreFlags, work: (store: Awaited<ReturnType<typeof openStoreFor>>) => Promise<T>): Promise<T> {
  const store = await openStoreFor(flags);
  try {
    return await work(store);
  } finally {
    await store.close();
  }
}

function operatorKey(text: string): string {
  const hex = parsePublicKey(text);
  if (!hex) throw new TesseraError("bad_request", `"${text}" is not an operator key: give its npub1… or 64-character hex`);
  return hex;
}

const short = (hex: string) => `${encodeNpub(hex).slice(0, 16)}…`;

/** `tessera coordinator join-tokens|operators|nodes`: admission, run against the coordinator's store. */
export function addAdmissionCommands(coordinator: Command, nowMs: () => number = () => Date.now()): void {
  const tokens = coordinator.command("join-tokens").description("join tokens: how a new operator is admitted when admission is `token`");

  withStoreFlags(tokens.command("create"))
    .description("make a join token; prints it once (only its hash is stored)")
    .option("--uses <n>", "how many operators may join with it", "1")
    .option("--expires <duration>", "how long it is valid, e.g. 24h or 7d (at most 365d)", "24h")
    .option("--note <text>", "what it is for, shown by `list`")
    .option("--json", "print JSON")
    .action(async (flags: StoreFlags & { uses: string; expires: string; note?: string }) => {
      const uses = Number(flags.uses);
      if (!Number.isInteger(uses) || uses < 1 || uses > 100_000) throw new TesseraError("bad_request", `--uses must be a whole number from 1 to 100000, got "${flags.uses}"`);
      const ttl = parseDuration(flags.expires, "--expires", { min: 60, max: 365 * 86_400 });
      if (flags.note !== undefined && !/^[\p{L}\p{N} .,:;@#_+\-/()]{1,200}$/u.test(flags.note)) {
        throw new TesseraError("bad_request", "--note must be 1-200 letters, digits, spaces or simple punctuation");
      }
      const token = JOIN_TOKEN_PREFIX + randomBytes(24).toString("base64url");
      const created = await withStore(flags, (store) =>
        store.createJoinToken({
          id: randomUUID(),
          tokenSha256: hashJoinToken(token),
          note: flags.note ?? null,
          maxUses: uses,
          createdAt: new Date(nowMs()),
          expiresAt: new Date(nowMs() + ttl * 1000),
        }),
      );
      if (flags.json) return printJson({ id: created.id, token, uses: created.maxUses, expires_at: created.expiresAt.toISOString() });
      process.stdout.write(
        [
          `join token ${created.id} (${uses} use${uses === 1 ? "" : "s"}, until ${created.expiresAt.toISOString()})`,
          "",
          `  ${token}`,
          "",
          "This token is shown once. The new operator runs:  tessera setup --join-token <token>",
          "                                            or:  tessera register --join-token <token>",
          "",
        ].join("\n"),
      );
    });

  withStoreFlags(tokens.command("list"))
    .description("list join tokens (never the tokens themselves)")
    .option("--json", "print JSON")
    .action(async (flags: StoreFlags) => {
      const list = await withStore(flags, (store) => store.listJoinTokens());
      const now = nowMs();
      const state = (t: (typeof list)[number]) =>
        t.revokedAt ? "revoked" : t.uses >= t.maxUses ? "used up" : t.expiresAt.getTime() <= now ? "expired" : "valid";
      if (flags.json) {
        return printJson(list.map((t) => ({ id: t.id, state: state(t), uses: t.uses, max_uses: t.maxUses, expires_at: t.expiresAt.toISOString(), note: t.note })));
      }
      if (list.length === 0) return void process.stdout.write(`no join tokens; make one with \`${printedCommand()} coordinator join-tokens create\`\n`);
      for (const t of list) {
        process.stdout.write(`${t.id}  ${state(t).padEnd(8)} ${`${t.uses}/${t.maxUses}`.padEnd(7)} until ${t.expiresAt.toISOString()}${t.note ? `  ${t.note}` : ""}\n`);
      }
    });

  withStoreFlags(tokens.command("revoke"))
    .description("revoke a join token by its id (or the first 6+ characters of it)")
    .argument("<id>", "the token's id, as `list` shows it")
    .action(async (id: string, flags: StoreFlags) => {
      if (!(await withStore(flags, (store) => store.revokeJoinToken(id, new Date(nowMs()))))) {
        throw new TesseraError("not_found", `no valid join token with id "${id}" (or the prefix matches several)`);
      }
      process.stdout.write(`revoked join token ${id}\n`);
    });

  const operators = coordinator.command("operators").description("operators: who runs nodes here, and whether they are admitted");

  withStoreFlags(operators.command("list"))
    .description("list operators with their status and node count")
    .option("--json", "print JSON")
    .action(async (flags: StoreFlags) => {
      const list = await withStore(flags, (store) => store.listOperators());
      if (flags.json) {
        return printJson(
          list.map((o) => ({ id: o.id, npub: encodeNpub(o.id), status: o.status, admitted_via: o.admittedVia, nodes: o.nodes, since: o.statusChangedAt.toISOString(), reason: o.statusReason })),
        );
      }
      if (list.length === 0) return void process.stdout.write("no operators yet\n");
      for (const o of list) {
        process.stdout.write(`${encodeNpub(o.id)}  ${o.status.padEnd(7)} ${String(o.nodes).padStart(3)} node(s)  via ${o.admittedVia.padEnd(8)} since ${o.statusChangedAt.toISOString()}${o.statusReason ? `  (${o.statusReason})` : ""}\n`);
      }
    });

  const setStatus = (name: "approve" | "ban", status: "active" | "banned", description: string) =>
    withStoreFlags(operators.command(name))
      .description(description)
      .argument("<operator>", "the operator's npub1… or hex key, as `operators list` shows it")
      .option("--reason <text>", "why, kept with the operator")
      .action(async (text: string, flags: StoreFlags & { reason?: string }) => {
        const id = operatorKey(text);
        const reason = flags.reason?.slice(0, 200) ?? (status === "active" ? "approved by the owner" : "banned by the owner");
        const changed = await withStore(flags, async (store) => {
          const existing = await store.getOperator(id);
          if (!existing) return false;
          await store.setOperatorStatus(id, status, new Date(nowMs()), reason);
          return true;
        });
        if (!changed) throw new TesseraError("not_found", `no operator ${encodeNpub(id)} here (\`${printedCommand()} coordinator operators list\`)`);
        process.stdout.write(
          status === "active"
            ? `approved ${encodeNpub(id)}: its nodes are admitted at their next registration\n`
            : `banned ${encodeNpub(id)}: its nodes are disconnected within 5 s and refused from now on\n`,
        );
      });
  setStatus("approve", "active", "admit an operator waiting for approval (or lift a ban)");
  setStatus("ban", "banned", "ban an operator: its nodes are disconnected and refused");

  const nodes = coordinator.command("nodes").description("nodes known to the coordinator");
  withStoreFlags(nodes.command("list"))
    .description("list nodes: status, operator, tier, reputation, checks, quarantine, key state")
    .option("--json", "print JSON")
    .action(async (flags: StoreFlags) => {
      const { storedStandings, createLogger } = await import("@tessera/coordinator");
      const { list, operatorStatus, standings } = await withStore(flags, async (store) => ({
        list: await store.listNodes(),
        operatorStatus: new Map((await store.listOperators()).map((o) => [o.id, o.status])),
        standings: await storedStandings(store, nowMs(), createLogger("silent")),
      }));
      const row = (n: (typeof list)[number]) => {
        const s = standings.get(n.id)!;
        return {
          id: n.id,
          npub: encodeNpub(n.id),
          status: n.status,
          operator: n.operatorId,
          operator_status: operatorStatus.get(n.operatorId) ?? "unknown",
          tier: s.tier,
          reputation: Number(s.score.toFixed(3)),
          checks: { passed: s.checksPassed, failed: s.checksFailed },
          quarantined: s.quarantined,
          models: n.models.map((m) => m.id),
          last_seen_at: n.lastSeenAt?.toISOString() ?? null,
          ...(n.retiredAt ? { rotated_at: n.retiredAt.toISOString(), successor: n.successorId } : {}),
        };
      };
      if (flags.json) return printJson(list.map(row));
      if (list.length === 0) return void process.stdout.write("no nodes yet\n");
      for (const n of list.map(row)) {
        process.stdout.write(
          `${short(n.id)}  ${n.status.padEnd(7)}  ${n.tier.padEnd(9)} rep ${n.reputation.toFixed(2)}  checks ${n.checks.passed}/${n.checks.failed}` +
            `${n.quarantined ? "  QUARANTINED" : ""}  operator ${short(n.operator)} (${n.operator_status})  ${n.models.join(",") || "-"}${n.rotated_at ? `  rotated ${n.rotated_at}` : ""}\n`,
        );
      }
    });

  withStoreFlags(nodes.command("release"))
    .description("lift a node's quarantine: it routes again and its next checks decide afresh (within 5 s on a running coordinator)")
    .argument("<node>", "the node's npub1… or hex key, as `nodes list` shows it")
    .option("--reason <text>", "why, kept in the coordinator's log")
    .action(async (text: string, flags: StoreFlags & { reason?: string }) => {
      const id = parsePublicKey(text);
      if (!id) throw new TesseraError("bad_request", `"${text}" is not a node key: give its npub1… or 64-character hex`);
      const reason = flags.reason?.slice(0, 200) ?? null;
      const found = await withStore(flags, async (store) => {
        if (!(await store.getNode(id))) return false;
        await store.requestQuarantineRelease({ nodeId: id, requestedAt: new Date(nowMs()), reason });
        return true;
      });
      if (!found) throw new TesseraError("not_found", `no node ${encodeNpub(id)} here (\`${printedCommand()} coordinator nodes list\`)`);
      process.stdout.write(`release of ${encodeNpub(id)} requested: the coordinator lifts its quarantine within 5 s (at its next start if none runs)\n`);
    });
}
