import type { Command } from "commander";
import { printJson } from "../output.js";
import { type ClientFlags, clientFrom, withClientOptions } from "./client-options.js";

export function addModelsCommand(program: Command): void {
  withClientOptions(
    program.command("models").description("list the models online nodes serve, with node counts and measured speed").option("--json", "print JSON"),
  ).action(async (flags: ClientFlags) => {
    const { models } = await clientFrom(flags).models();
    if (flags.json) return printJson({ models });
    if (models.length === 0) return void process.stdout.write("no models are being served right now\n");
    process.stdout.write(`${"MODEL".padEnd(32)} ${"NODES".padStart(5)}  TOKENS/S\n`);
    for (const m of models) {
      process.stdout.write(`${m.id.padEnd(32)} ${String(m.nodes).padStart(5)}  ${m.avg_tokens_per_second ?? "—"}\n`);
    }
  });
}
