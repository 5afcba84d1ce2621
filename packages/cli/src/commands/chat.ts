import { createInterface } from "node:readline";
import type { Command } from "commander";
import { TesseraError } from "@tessera/protocol";
import type { ChatRequest } from "@tessera/sdk";
import { printJson } from "../output.js";
import { type ClientFlags, clientFrom, withClientOptions } from "./client-options.js";
import { printedCommand } from "../config.js";

interface ChatFlags extends ClientFlags {
  stream?: boolean;
  model?: string;
  maxTokens?: string;
  temperature?: string;
  topP?: string;
  seed?: string;
  system?: string;
}

type Client = ReturnType<typeof clientFrom>;
type Sampling = Pick<ChatRequest, "max_tokens" | "temperature" | "top_p" | "seed">;

export function addChatCommand(program: Command): void {
  withClientOptions(
    program
      .command("chat")
      .description("send one prompt and print the answer; without a prompt, chat turn by turn (history kept; Ctrl-D or /exit ends)")
      .argument("[prompt]", "what to ask (leave out for an interactive chat)")
      .option("--stream", "stream tokens as they are generated")
      .option("--no-stream", "wait for the whole answer")
      .option("-m, --model <model>", "model to use (default: the first one the network serves)")
      .option("--max-tokens <n>", "most tokens to generate per answer", "256")
      .option("--temperature <t>", "sampling temperature, 0 for greedy", "0.7")
      .option("--top-p <p>", "nucleus sampling: only the likeliest tokens that make up this probability (0 < p ≤ 1)", "1")
      .option("--seed <n>", "sampling seed, for answers that repeat")
      .option("--system <text>", "a system prompt")
      .option("--json", "print the finished job as JSON (one prompt only)"),
  ).action(async (prompt: string | undefined, flags: ChatFlags) => {
    const sampling = samplingFrom(flags);
    if (prompt !== undefined && prompt.trim() === "") throw new TesseraError("bad_request", "the prompt is empty");
    if (prompt === undefined && flags.json) throw new TesseraError("bad_request", "--json needs a prompt: an interactive chat prints answers as they come");
    const client = clientFrom(flags);
    const model = flags.model ?? (await defaultModel(client));
    const system = flags.system ? [{ role: "system" as const, content: flags.system }] : [];
    if (prompt === undefined) return interactive(client, model, system, sampling);
    const request: ChatRequest = { model, messages: [...system, { role: "user", content: prompt }], ...sampling };
    if (flags.json ? false : (flags.stream ?? true)) {
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

function samplingFrom(flags: ChatFlags): Sampling {
  const maxTokens = Number(flags.maxTokens);
  const temperature = Number(flags.temperature);
  const topP = Number(flags.topP);
  if (!Number.isInteger(maxTokens) || maxTokens < 1) throw new TesseraError("bad_request", "--max-tokens must be a positive whole number");
  if (!Number.isFinite(temperature) || temperature < 0 || temperature > 2) throw new TesseraError("bad_request", "--temperature must be between 0 and 2");
  if (!(topP > 0 && topP <= 1)) throw new TesseraError("bad_request", "--top-p must be above 0 and at most 1");
  let seed: number | undefined;
  if (flags.seed !== undefined) {
    seed = Number(flags.seed);
    if (!Number.isInteger(seed) || seed < 0 || seed > 2 ** 32 - 1) throw new TesseraError("bad_request", "--seed must be a whole number from 0 to 4294967295");
  }
  return { max_tokens: maxTokens, temperature, top_p: topP, ...(seed !== undefined ? { seed } : {}) };
}

/**
 * One turn per line, the whole conversation sent each time (the coordinator keeps no session). On a terminal it
 * prompts `you>`; from a pipe it reads one user turn per line. An answer that fails is reported and the turn dropped,
 * so the chat goes on.
 */
async function interactive(client: Client, model: string, system: ChatRequest["messages"], sampling: Sampling): Promise<void> {
  const tty = process.stdin.isTTY === true;
  const lines = createInterface({ input: process.stdin, output: tty ? process.stdout : undefined, terminal: tty });
  const history: ChatRequest["messages"] = [...system];
  if (tty) process.stdout.write(`chatting with ${model} (Ctrl-D or /exit ends)\n`);
  const ask = () => tty && lines.prompt();
  lines.setPrompt("you> ");
  ask();
  for await (const line of lines) {
    const text = line.trim();
    if (text === "/exit") break;
    if (text === "") {
      ask();
      continue;
    }
    history.push({ role: "user", content: text });
    let answer = "";
    try {
      for await (const piece of client.streamChat({ model, messages: history, ...sampling })) {
        answer += piece;
        process.stdout.write(piece);
      }
      process.stdout.write("\n");
      history.push({ role: "assistant", content: answer });
    } catch (err) {
      history.pop();
      const e = err instanceof TesseraError ? err : new TesseraError("internal_error", String(err));
      process.stderr.write(`\nerror [${e.code}]: ${e.message}\n`);
    }
    ask();
  }
  lines.close();
}

async function defaultModel(client: Client): Promise<string> {
  const { models } = await client.models();
  if (models.length === 0) throw new TesseraError("no_capacity", `no node is serving any model right now; start one with \`${printedCommand()} start\` or \`${printedCommand()} up\``);
  return models[0]!.id;
}
