import type { Command } from "commander";
import { TesseraError } from "@tessera/protocol";
import { printJson } from "../output.js";
import { type ClientFlags, clientFrom, withClientOptions } from "./client-options.js";

export function addStatusCommand(program: Command): void {
  withClientOptions(
    program
      .command("status")
      .description("show whether the coordinator answers, what it serves, and (with --node) a node's status")
      .option("--node <id>", "a node id (64-hex public key) to check")
      .option("--json", "print JSON"),
  ).action(async (flags: ClientFlags & { node?: string }) => {
    const client = clientFrom(flags);
    const started = performance.now();
    await client.health().catch((err: unknown) => {
      throw err instanceof TesseraError ? err : new TesseraError("no_capacity", `coordinator unreachable: ${(err as Error).message}`);
    });
    const latencyMs = Math.round(performance.now() - started);
    const { models } = await client.models();
    const node = flags.node ? await client.nodeStatus(flags.node) : undefined;
    const status = { coordinator: "ok", latency_ms: latencyMs, models, ...(node ? { node: { id: flags.node, ...node } } : {}) };
    if (flags.json) return printJson(status);
    process.stdout.write(`coordinator  ok (${latencyMs} ms)\n`);
    process.stdout.write(`models       ${models.length ? models.map((m) => `${m.id} (${m.nodes} node${m.nodes === 1 ? "" : "s"})`).join(", ") : "none online"}\n`);
    if (node) process.stdout.write(`node         ${node.status}\n`);
  });
}
