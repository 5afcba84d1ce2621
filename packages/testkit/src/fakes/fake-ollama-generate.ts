import type { ServerResponse } from "node:http";
import type { FakeBehaviour } from "./fake-behaviour.js";
import { pumpTokens, sendJson } from "./fake-http-server.js";
import { fakeLogprob, tokenize } from "./fake-tokens.js";
import { planCompletion } from "./fake-completions.js";

/**
 * Ollama's `POST /api/generate` at its wire format, for raw prompts: NDJSON (`stream` defaults to true), each line
 * `{model, created_at, response, done:false}` (with `logprobs:[{token, logprob, bytes, top_logprobs}]` when asked),
 * then `{…, response:"", done:true, done_reason, prompt_eval_count, eval_count, durations}`; `stream:false` answers
 * one object with the whole `response`. With `raw:true` the prompt is used as is (no template); without it the fake
 * counts 4 template tokens more. The model "continues the document" as fake-completions.ts does.
 */
export interface OllamaGenerateBody {
  model?: string;
  prompt?: unknown;
  raw?: boolean;
  stream?: boolean;
  options?: { num_predict?: number };
  logprobs?: boolean;
}

export function writeOllamaGenerate(res: ServerResponse, name: string, body: OllamaGenerateBody, behaviour: FakeBehaviour): void {
  if (typeof body.prompt !== "string") {
    sendJson(res, 400, { error: "prompt must be a string" });
    return;
  }
  const prompt = body.prompt;
  const reply = typeof behaviour.reply === "function" ? behaviour.reply(prompt) : behaviour.reply;
  const numPredict = body.options?.num_predict;
  const plan = planCompletion(reply, prompt, numPredict !== undefined && numPredict >= 0 ? numPredict : undefined);
  const promptTokens = tokenize(prompt).length + (body.raw === true ? 1 : 5);
  const logprobsOf = (i: number) => [{ token: plan.tokens[i], logprob: fakeLogprob(i), bytes: [...Buffer.from(plan.tokens[i]!, "utf8")], top_logprobs: [] }];
  const final = () => ({ model: name, created_at: new Date().toISOString(), response: "", ...ollamaDoneFields(plan.finish, promptTokens, plan.tokens.length) });
  if (body.stream === false) {
    if (behaviour.failAfterTokens !== undefined) {
      sendJson(res, 500, { error: "llama runner process has terminated: exit status 2" });
      return;
    }
    const whole: Record<string, unknown> = { ...final(), response: plan.tokens.join("") };
    if (body.logprobs === true) whole.logprobs = plan.tokens.flatMap((_t, i) => logprobsOf(i));
    sendJson(res, 200, whole);
    return;
  }
  res.writeHead(200, { "content-type": "application/x-ndjson" });
  pumpTokens(res, behaviour, {
    count: plan.tokens.length,
    emit: (i) => {
      const line: Record<string, unknown> = { model: name, created_at: new Date().toISOString(), response: plan.tokens[i], done: false };
      if (body.logprobs === true) line.logprobs = logprobsOf(i);
      res.write(JSON.stringify(line) + "\n");
    },
    fail: () => res.end(JSON.stringify({ error: "llama runner process has terminated: exit status 2" }) + "\n"),
    finish: () => res.end(JSON.stringify(final()) + "\n"),
  });
}

/** The fields Ollama's last line carries on `/api/chat` and `/api/generate` alike: done, why, the counts and timings. */
export function ollamaDoneFields(finish: string, promptTokens: number, evalCount: number) {
  return {
    done: true,
    done_reason: finish,
    total_duration: 1_000_000,
    load_duration: 100_000,
    prompt_eval_count: promptTokens,
    prompt_eval_duration: 200_000,
    eval_count: evalCount,
    eval_duration: 700_000,
  };
}
