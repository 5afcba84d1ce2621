import { TesseraError, type StreamPart } from "@tessera/protocol";
import { fakeLogprob, tokenize, type FakeBehaviour } from "@tessera/testkit";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { BackendAdapter, GenerateRequest } from "../../src/backends/adapter.js";

/**
 * The one contract every backend adapter keeps, run against each adapter with its protocol-faithful fake.
 * A backend-specific file supplies how to start the pair; every case here asserts what a user of the node sees.
 */
export interface ContractSubject {
  adapter: BackendAdapter;
  /** The model name the fake serves. */
  model: string;
  setBehaviour(patch: Partial<FakeBehaviour>): void;
  goDown(): Promise<void>;
  comeBack(): Promise<void>;
  close(): Promise<void>;
}

export interface ContractOptions {
  start(): Promise<ContractSubject>;
  /** How the backend handles an assistant prefix: continue it, or refuse with a bad_request part. */
  assistantPrefix: "continues" | "refuses";
  /** The backend rejects a model it does not serve (llama-server alone serves whatever name it is asked). */
  rejectsUnknownModel: boolean;
  /** The backend can be made to call a tool (`tool_choice` required or named), or refuses that by name (Ollama). */
  forcesToolCalls: boolean;
}

const REPLY = "The quick brown fox jumps over the lazy dog and keeps running far away";
const BASE: FakeBehaviour = { tokensPerSecond: 0, responseDelayMs: 0, failAfterTokens: undefined, dropAfterTokens: undefined, hold: undefined, reply: REPLY, toolArguments: '{"city":"Oslo","days":[1,2]}' };
const WEATHER = { type: "function" as const, function: { name: "get_weather", parameters: { type: "object", properties: { city: { type: "string" } } } } };

async function collect(parts: AsyncIterable<StreamPart>): Promise<StreamPart[]> {
  const out: StreamPart[] = [];
  for await (const p of parts) out.push(p);
  return out;
}

function text(parts: StreamPart[]): string {
  return parts.map((p) => (p.type === "text-delta" ? p.text : "")).join("");
}

export function adapterContract(name: string, options: ContractOptions): void {
  describe(`${name}: adapter contract`, () => {
    let s: ContractSubject;
    const request = (patch: Partial<GenerateRequest> = {}): GenerateRequest => ({
      model: s.model,
      messages: [
        { role: "system", content: "Be brief." },
        { role: "user", content: "Tell me about the fox" },
      ],
      sampling: { max_tokens: 64, temperature: 0, top_p: 1 },
      ...patch,
    });

    beforeAll(async () => {
      s = await options.start();
    });
    afterAll(async () => {
      await s.close();
    });
    beforeEach(async () => {
      await s.comeBack();
      s.setBehaviour(BASE);
    });

    it("streams the reply as text deltas, then real usage, then exactly one finish", async () => {
      const parts = await collect(s.adapter.doStream(request()));
      const types = parts.map((p) => p.type);
      const firstNonDelta = types.findIndex((t) => t !== "text-delta");
      expect(types.slice(firstNonDelta)).toEqual(["usage", "finish"]);
      expect(text(parts)).toBe(REPLY);
      const usage = parts.find((p) => p.type === "usage");
      expect(usage).toMatchObject({ completion_tokens: tokenize(REPLY).length });
      expect(usage && usage.type === "usage" && usage.prompt_tokens).toBeGreaterThan(0);
      expect(parts.at(-1)).toEqual({ type: "finish", reason: "stop" });
    });

    it("reports per-token logprobs, one per generated token", async () => {
      const parts = await collect(s.adapter.doStream(request()));
      const logprobs = parts.flatMap((p) => (p.type === "text-delta" ? (p.logprobs ?? []) : []));
      expect(logprobs).toEqual(tokenize(REPLY).map((_t, i) => fakeLogprob(i)));
    });

    it("stops at max_tokens with finish reason length", async () => {
      const parts = await collect(s.adapter.doStream(request({ sampling: { max_tokens: 3, temperature: 0, top_p: 1 } })));
      expect(text(parts)).toBe(tokenize(REPLY).slice(0, 3).join(""));
      expect(parts.find((p) => p.type === "usage")).toMatchObject({ completion_tokens: 3 });
      expect(parts.at(-1)).toEqual({ type: "finish", reason: "length" });
    });

    it("doGenerate returns the same text, usage and finish without streaming", async () => {
      const result = await s.adapter.doGenerate(request());
      expect(result.text).toBe(REPLY);
      expect(result.usage.completion_tokens).toBe(tokenize(REPLY).length);
      expect(result.usage.prompt_tokens).toBeGreaterThan(0);
      expect(result.finishReason).toBe("stop");
      expect(result.logprobs).toHaveLength(tokenize(REPLY).length);
    });

    it("an error mid-stream becomes an error part after the text already sent, never a throw", async () => {
      s.setBehaviour({ failAfterTokens: 3 });
      const parts = await collect(s.adapter.doStream(request()));
      expect(text(parts)).toBe(tokenize(REPLY).slice(0, 3).join(""));
      expect(parts.at(-1)).toMatchObject({ type: "error", code: "internal_error" });
      expect(parts.filter((p) => p.type === "finish")).toHaveLength(0);
    });

    it("a backend crashing mid-stream (connection cut) becomes an error part", async () => {
      s.setBehaviour({ dropAfterTokens: 2, tokensPerSecond: 200 });
      const parts = await collect(s.adapter.doStream(request()));
      expect(parts.at(-1)).toMatchObject({ type: "error", code: "internal_error" });
      expect(parts.filter((p) => p.type === "text-delta").length).toBeLessThanOrEqual(2);
    });

    it("aborting mid-stream ends with usage so far and finish cancelled", async () => {
      s.setBehaviour({ tokensPerSecond: 100 });
      const controller = new AbortController();
      const parts: StreamPart[] = [];
      for await (const p of s.adapter.doStream(request({ signal: controller.signal }))) {
        parts.push(p);
        if (p.type === "text-delta") controller.abort();
      }
      expect(parts.filter((p) => p.type === "text-delta").length).toBeLessThan(tokenize(REPLY).length);
      expect(parts.at(-2)?.type).toBe("usage");
      expect(parts.at(-1)).toEqual({ type: "finish", reason: "cancelled" });
    });

    it("a slow backend past the caller's deadline ends cancelled instead of hanging", async () => {
      s.setBehaviour({ responseDelayMs: 2_000 });
      const parts = await collect(s.adapter.doStream(request({ signal: AbortSignal.timeout(50) })));
      expect(parts.at(-1)).toEqual({ type: "finish", reason: "cancelled" });
    });

    it("passes each token on as the backend writes it (the stream is not buffered)", async () => {
      // The fake writes token 1 and then waits for the client to have it; only then are tokens 2-6 written. An adapter
      // that buffered the stream would never yield token 1, and this test would time out.
      let release!: () => void;
      s.setBehaviour({ hold: { afterTokens: 1, until: new Promise<void>((r) => (release = r)) } });
      const deltas: string[] = [];
      for await (const p of s.adapter.doStream(request({ sampling: { max_tokens: 6, temperature: 0, top_p: 1 } }))) {
        if (p.type !== "text-delta") continue;
        deltas.push(p.text);
        if (deltas.length === 1) release();
      }
      expect(deltas).toHaveLength(6);
      expect(deltas.join("")).toBe(REPLY.split(" ").slice(0, 6).join(" "));
    });

    it("a tool call comes back as one tool-calls part (after any text, before usage and finish), whole and streamed", async () => {
      const sampling = { max_tokens: 64, temperature: 0, top_p: 1, tools: [WEATHER], tool_choice: "auto" as const };
      const parts = await collect(s.adapter.doStream(request({ sampling })));
      expect(parts.map((p) => p.type)).toEqual(["tool-calls", "usage", "finish"]);
      const calls = parts[0]!.type === "tool-calls" ? parts[0]!.calls : [];
      expect(calls).toEqual([{ id: expect.stringMatching(/^call_/), type: "function", function: { name: "get_weather", arguments: expect.any(String) } }]);
      expect(JSON.parse(calls[0]!.function.arguments)).toEqual({ city: "Oslo", days: [1, 2] });
      expect(parts.at(-1)).toEqual({ type: "finish", reason: "stop" });
      const whole = await s.adapter.doGenerate(request({ sampling }));
      expect(whole.toolCalls?.map((c) => [c.function.name, JSON.parse(c.function.arguments)])).toEqual([["get_weather", { city: "Oslo", days: [1, 2] }]]);
    });

    it("takes a history with a call and its result, and answers in text when tool_choice is none", async () => {
      const parts = await collect(
        s.adapter.doStream(
          request({
            messages: [
              { role: "user", content: "Weather in Oslo?" },
              { role: "assistant", content: "", tool_calls: [{ id: "call_1", type: "function", function: { name: "get_weather", arguments: '{"city":"Oslo"}' } }] },
              { role: "tool", content: '{"temp":4}', tool_call_id: "call_1" },
            ],
            sampling: { max_tokens: 64, temperature: 0, top_p: 1, tools: [WEATHER], tool_choice: "none" },
          }),
        ),
      );
      expect(parts.some((p) => p.type === "tool-calls")).toBe(false);
      expect(text(parts)).toBe(REPLY);
      expect(parts.at(-1)).toEqual({ type: "finish", reason: "stop" });
    });

    it(options.forcesToolCalls ? "tool_choice required is passed on" : "tool_choice required is refused by name", async () => {
      const parts = await collect(s.adapter.doStream(request({ sampling: { max_tokens: 64, temperature: 0, top_p: 1, tools: [WEATHER], tool_choice: "required" } })));
      if (options.forcesToolCalls) expect(parts.map((p) => p.type)).toEqual(["tool-calls", "usage", "finish"]);
      else expect(parts).toEqual([{ type: "error", code: "bad_request", message: expect.stringContaining("tool_choice") }]);
    });

    it("lists the served model", async () => {
      const models = await s.adapter.listModels();
      expect(models.map((m) => m.id)).toContain(s.model);
    });

    it("health is ok while up; down is reported with a message, streams fail as no_capacity parts", async () => {
      expect(await s.adapter.health()).toEqual({ ok: true });
      await s.goDown();
      const health = await s.adapter.health();
      expect(health.ok).toBe(false);
      expect(health.ok === false && health.message).toMatch(/unreachable|ECONNREFUSED/);
      const parts = await collect(s.adapter.doStream(request()));
      expect(parts).toEqual([{ type: "error", code: "no_capacity", message: expect.stringContaining("unreachable") }]);
      await expect(s.adapter.listModels()).rejects.toMatchObject({ code: "no_capacity" });
      await s.comeBack();
      expect(await s.adapter.health()).toEqual({ ok: true });
    });

    if (options.rejectsUnknownModel) {
      it("a model the backend does not serve is a model_not_found part", async () => {
        const parts = await collect(s.adapter.doStream(request({ model: "no-such-model" })));
        expect(parts).toEqual([{ type: "error", code: "model_not_found", message: expect.any(String) }]);
        await expect(s.adapter.doGenerate(request({ model: "no-such-model" }))).rejects.toBeInstanceOf(TesseraError);
      });
    }

    if (options.assistantPrefix === "continues") {
      it("continues an assistant message another node started, without repeating the prefix", async () => {
        const prefix = tokenize(REPLY).slice(0, 4).join("");
        const parts = await collect(s.adapter.doStream(request({ assistantPrefix: prefix })));
        expect(prefix + text(parts)).toBe(REPLY);
        expect(parts.at(-1)).toEqual({ type: "finish", reason: "stop" });
      });
    } else {
      it("refuses an assistant prefix it cannot continue with a bad_request part", async () => {
        const parts = await collect(s.adapter.doStream(request({ assistantPrefix: "The quick" })));
        expect(parts).toEqual([{ type: "error", code: "bad_request", message: expect.stringContaining("cannot continue") }]);
      });
    }
  });
}
