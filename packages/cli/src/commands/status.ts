import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { Command } from "commander";
import { TesseraError, parsePublicKey } from "@tessera/protocol";
import { IDLE_STATE_FILE_NAME, readStageOfferRefusal, resolveHome, type StageOfferRefusal } from "@tessera/node/config";
import { printJson } from "../output.js";
import { type ClientFlags, clientFrom, withClientOptions } from "./client-options.js";

interface LocalIdleState {
  state: string;
  reason: string;
  since: string;
  updated_at: string;
  pid: number;
  drains_last_hour: number;
  /** The last reading; `sources` names the tool that answered each signal (none: cannot tell). */
  last_sample?: { sources?: { input?: string; gpu?: string; power?: string } };
  running: boolean;
}

/** Which tool answered each of the idle policy's signals, or that it cannot tell (idle/design.md). */
function signalSources(sample: LocalIdleState["last_sample"]): { input: string; gpu: string; power: string } {
  const s = sample?.sources ?? {};
  return { input: s.input ?? "cannot tell", gpu: s.gpu ?? "cannot tell", power: s.power ?? "cannot tell" };
}

/** The local daemon's idle state (`<data>/idle-state.json`, written by the daemon), when this machine has one. */
function localIdleState(dataDir: string): LocalIdleState | undefined {
  try {
    const file = JSON.parse(readFileSync(join(dataDir, IDLE_STATE_FILE_NAME), "utf8")) as Omit<LocalIdleState, "running">;
    let running = false;
    try {
      process.kill(file.pid, 0);
      running = true;
    } catch (err) {
      running = (err as NodeJS.ErrnoException).code === "EPERM";
    }
    return { ...file, running };
  } catch {
    return undefined;
  }
}

export function addStatusCommand(program: Command): void {
  withClientOptions(
    program
      .command("status")
      .description("show whether the coordinator answers, what it serves, and (with --node) a node's status and, for this machine's node, its idle state and why")
      .option("--node [id]", "a node id to check: npub1… as the node's log shows it, or 64-hex; without one: this machine's node (--home)")
      .option("--home <dir>", "this machine's node home, for --node without an id (TESSERA_HOME)")
      .option("--json", "print JSON"),
  ).action(async (flags: ClientFlags & { node?: string | true; home?: string }) => {
    let nodeId: string | undefined;
    let local: LocalIdleState | undefined;
    let refusal: StageOfferRefusal | undefined;
    if (flags.node === true || flags.node !== undefined) {
      const paths = resolveHome(flags.home);
      let localId: string | undefined;
      try {
        const { signerFromKeyFile } = await import("@tessera/node/key-store");
        localId = signerFromKeyFile(paths.keyFile).publicKeyHex;
      } catch {
        localId = undefined;
      }
      if (flags.node === true) {
        if (!localId) throw new TesseraError("not_found", `--node without an id means this machine's node, but there is no node key at ${paths.keyFile}; pass an id or --home`);
        nodeId = localId;
      } else {
        nodeId = parsePublicKey(flags.node);
        if (nodeId === undefined) {
          throw new TesseraError("bad_request", `--node must be a node id: npub1… (as \`tessera start\` logs it) or 64 hex characters, got "${flags.node}"`);
        }
      }
      if (nodeId === localId) {
        local = localIdleState(paths.dataDir);
        refusal = readStageOfferRefusal(paths.dataDir);
      }
    }
    const client = clientFrom(flags);
    const started = performance.now();
    await client.health().catch((err: unknown) => {
      throw err instanceof TesseraError ? err : new TesseraError("unreachable", `coordinator unreachable: ${(err as Error).message}`);
    });
    const latencyMs = Math.round(performance.now() - started);
    const { models } = await client.models();
    const node = nodeId ? await client.nodeStatus(nodeId) : undefined;
    const idle = local
      ? { idle: { state: local.running ? local.state : "stopped", reason: local.reason, since: local.since, drains_last_hour: local.drains_last_hour, signals: signalSources(local.last_sample) } }
      : {};
    // The span offer this machine's daemon last heard refused (stage-host/offer-refusal.ts), if any.
    const stage = refusal ? { stage_offer_refused: refusal } : {};
    const status = { coordinator: "ok", latency_ms: latencyMs, models, ...(node ? { node: { id: nodeId, ...node, ...idle, ...stage } } : {}) };
    if (flags.json) return printJson(status);
    process.stdout.write(`coordinator  ok (${latencyMs} ms)\n`);
    process.stdout.write(`models       ${models.length ? models.map((m) => `${m.id} (${m.nodes} node${m.nodes === 1 ? "" : "s"})`).join(", ") : "none online"}\n`);
    if (node) process.stdout.write(`node         ${node.status}\n`);
    if (local) {
      const state = local.running ? local.state : `stopped (last: ${local.state})`;
      process.stdout.write(`idle         ${state} since ${local.since}: ${local.reason}\n`);
      if (local.drains_last_hour > 0) process.stdout.write(`drains       ${local.drains_last_hour} in the last hour\n`);
      const signals = signalSources(local.last_sample);
      process.stdout.write(`signals      input: ${signals.input}; GPU use by others: ${signals.gpu}; battery: ${signals.power}\n`);
    }
    if (node && refusal) {
      const field = refusal.param === undefined ? "" : `, ${refusal.param}`;
      process.stdout.write(`stage offer  ${refusal.model} refused at ${refusal.at} (${refusal.code}${field}): ${refusal.message}; ${refusal.advice}\n`);
    }
  });
}
