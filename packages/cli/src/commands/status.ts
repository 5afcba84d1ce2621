import type { Command } from "commander";
import { TesseraError, parsePublicKey } from "@tessera/protocol";
import { printJson } from "../output.js";
import { type ClientFlags, clientFrom, withClientOptions } from "./client-options.js";

export function addStatusCommand(program: Command): void {
  withClientOptions(
    program
      .command("status")
      .description("show whether the coordinator answers, what it serves, and (with --node) a node's status")
      .option("--node <id>", "a node id to check: npub1… as the node's log shows it, or 64-hex")
      .option("--json", "print JSON"),
  ).action(async (flags: ClientFlags & { node?: string }) => {
    const nodeId = flags.node === undefined ? undefined : parsePublicKey(flags.node);
    if (flags.node !== undefined && nodeId === undefined) {
      throw new TesseraError("bad_request", `--node must be a node id: npub1… (as \`tessera start\` logs it) or 64 hex characters, got "${flags.node}"`);
    }
    const client = clientFrom(flags);
    const started = performance.now();
    await client.health().catch((err: unknown) => {
      throw err instanceof TesseraError ? err : new TesseraError("unreachable", `coordinator unreachable: ${(err as Error).message}`);
    });
    const latencyMs = Math.round(performance.now() - started);
    const { models } = await client.models();
    const node = nodeId ? await client.nodeStatus(nodeId) : undefined;
    const status = { coordinator: "ok", latency_ms: latencyMs, models, ...(node ? { node: { id: nodeId, ...node } } : {}) };
    if (flags.json) return printJson(status);
    process.stdout.write(`coordinator  ok (${latencyMs} ms)\n`);
    process.stdout.write(`models       ${models.length ? models.map((m) => `${m.id} (${m.nodes} node${m.nodes === 1 ? "" : "s"})`).join(", ") : "none online"}\n`);
    if (node) process.stdout.write(`node         ${node.status}\n`);
  });
}
