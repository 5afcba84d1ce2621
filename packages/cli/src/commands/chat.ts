import type { Command } from "commander";
import { TesseraError } from "@tessera/protocol";
import { printJson } from "../output.js";
import { type ClientFlags, clientFrom, withClientOptions } from "./client-options.js";

interface ChatFlags extends ClientFlags {
  stream?: boolean;
  model?: string;
  maxTokens?: string;
  temperature?: string;
  system?: string;
}

export function addChatCommand(program: Command): void {
  withClientOptions(
    program
      .command("chat")
      .description("send one prompt and print the answer (streamed as it is generated unless --no-stream)")
      .argument("<prompt>", "what to ask")
      .option("--stream", "stream tokens as they are generated")
      .option("--no-stream", "wait for the whole answer")
      .option("-m, --model <model>", "model to use (default: the first one the network serves)")
      .option("--max-tokens <n>", "most tokens to generate", "256")
      .option("--temperature <t>", "sampling temperature, 0 for greedy", "0.7")
      .option("--system <text>", "a system prompt")
      .option("--json", "print the finished job as JSON"),
  ).action(async (prompt: string, flags: ChatFlags) => {
    if (prompt.trim() === "") throw new TesseraError("bad_request", "the prompt is empty");
    const maxTokens = Number(flags.maxTokens);
    const temperature = Number(flags.temperature);
    if (!Number.isInteger(maxTokens) || maxTokens < 1) throw new TesseraError("bad_request", "--max-tokens must be a positive whole number");
    if (!Number.isFinite(temperature) || temperature < 0 || temperature > 2) throw new TesseraError("bad_request", "--temperature must be between 0 and 2");
    const client = clientFrom(flags);
    const model = flags.model ?? (await defaultModel(client));
    const messages = [...(flags.system ? [{ role: "system" as const, content: flags.system }] : []), { role: "user" as const, content: prompt }];
    const request = { model, messages, max_tokens: maxTokens, temperature };
    const stream = flags.json ? false : (flags.stream ?? true);
    if (stream) {
      for await (const text of client.streamChat(request)) process.stdout.write(text);
      process.stdout.write("\n");
      return;
    }
    const accepted = await client.submitJob(request);
    for (;;) {
      const job = await client.getJob(accepted.id);
      if (job.status === "completed") {
        if (flags.json) printJson(job);
        else process.stdout.write(`${job.result?.content ?? ""}\n`);
        return;
      }
      if (job.status === "failed") throw new TesseraError(job.error as TesseraError["code"], job.error_message ?? "job failed");
      await new Promise((r) => setTimeout(r, 200));
    }
  });
}

async function defaultModel(client: ReturnType<typeof clientFrom>): Promise<string> {
  const { models } = await client.models();
  if (models.length === 0) throw new TesseraError("no_capacity", "no node is serving any model right now; start one with `tessera start` or `tessera up`");
  return models[0]!.id;
}
