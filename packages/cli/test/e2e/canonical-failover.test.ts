import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Cluster, type RunningLlamaServer, buildLlamaServer, greedyReference, killMidStream, makeTinyModel, startCluster, startLlamaServer, streamGreedyChat } from "@tessera/testkit";

/**
 * Issue 17 §0 on real processes: one daemon on a REAL llama-server (built from node-llama-cpp's llama.cpp sources),
 * one on the embedded engine, the same GGUF with a ChatML template. Whichever daemon serves the greedy stream is
 * SIGKILLed at token 20 of 64 and the other, on the other backend, continues from the first node's prompt ids: the
 * client's text equals the uninterrupted embedded run. Both directions are run (the killed daemon is restarted and the
 * next stream is repeated until each backend has been the one killed). A tool chat (tools offered, an earlier call
 * and its result in the history) does the same: both backends write it in Tessera's one tool format
 * (node/src/constrained/design.md), so its prompt ids travel too. Skips with a printed notice without a compiler;
 * mandatory under CI=true.
 */
const CHATML =
  "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
const MODEL = "canon-50m";
let skipReason: string | undefined;
let dir: string;
let modelPath: string;
let server: RunningLlamaServer | undefined;
let cluster: Cluster | undefined;
const backendOf = new Map<string, "llama-server" | "embedded">();

beforeAll(async () => {
  const build = await buildLlamaServer();
  if (build.binaryPath === undefined) {
    skipReason = build.reason;
    process.stderr.write(`\n*** canonical-failover.test.ts SKIPPED: ${build.reason} ***\n\n`);
    return;
  }
  dir = mkdtempSync(join(tmpdir(), "tessera-canonical-failover-"));
  modelPath = join(dir, `${MODEL}.gguf`);
  await makeTinyModel({ path: modelPath, seed: 7, preset: "50m", vocab: "spm", chatTemplate: CHATML });
  server = await startLlamaServer({ binaryPath: build.binaryPath, modelPath, alias: MODEL, threads: 1 });
  cluster = await startCluster({ nodes: 0 });
  const remote = await cluster.addNode({ nodeArgs: ["--backend", "llama-server", "--llama-server-host", server.baseURL] });
  backendOf.set(remote.id, "llama-server");
  const local = await cluster.addNode({ modelPath });
  backendOf.set(local.id, "embedded");
}, 60 * 60_000);

afterAll(async () => {
  await cluster?.stop();
  await server?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("failover between a llama-server node and an embedded node", () => {
  it("a stream whose node is SIGKILLed at token 20 of 64 continues on the other backend, exactly", async (ctx) => {
    if (skipReason) return ctx.skip();
    const messages = [{ role: "user" as const, content: "Write about rivers." }];
    const reference = await greedyReference({ modelPath, messages, maxTokens: 64 });
    expect(reference.completionTokens).toBe(64);
    const killedBackends = new Set<string>();
    for (let attempt = 0; attempt < 6 && killedBackends.size < 2; attempt++) {
      const run = await killMidStream(cluster!, { model: MODEL, messages, maxTokens: 64 }, 20);
      const killed = backendOf.get(run.killed.id)!;
      const finishedBy = backendOf.get(run.finishedBy ?? "");
      process.stderr.write(`canonical failover: killed the ${killed} node at chunk 20, ${finishedBy} finished; text ${run.text === reference.text ? "identical" : "DIFFERENT"} (${run.usage?.completion_tokens} tokens)\n`);
      expect(finishedBy).toBeDefined();
      expect(finishedBy).not.toBe(killed);
      expect(run.text).toBe(reference.text);
      expect(run.usage?.completion_tokens).toBe(64);
      killedBackends.add(killed);
      await cluster!.restartNode(run.killed);
    }
    expect([...killedBackends].sort()).toEqual(["embedded", "llama-server"]);
  }, 10 * 60_000);

  it("a tool chat's text answer continues exactly on the other backend too, in both directions", async (ctx) => {
    if (skipReason) return ctx.skip();
    const request = {
      model: MODEL,
      maxTokens: 64,
      tools: [{ type: "function" as const, function: { name: "river_length", description: "Length of a river in km", parameters: { type: "object", properties: { river: { type: "string" } }, required: ["river"] } } }],
      toolChoice: "auto" as const,
      messages: [
        { role: "user" as const, content: "How long is the Danube? Then write about rivers." },
        { role: "assistant" as const, content: null, tool_calls: [{ id: "call_1", type: "function" as const, function: { name: "river_length", arguments: '{"river":"Danube"}' } }] },
        { role: "tool" as const, tool_call_id: "call_1", content: '{"km": 2850}' },
      ],
    };
    // The uninterrupted answer (whichever backend serves it): every join below, killed on either side, must equal it.
    const whole = await streamGreedyChat(cluster!.url, request);
    expect(whole.usage?.completion_tokens).toBe(64);
    const killedBackends = new Set<string>();
    for (let attempt = 0; attempt < 6 && killedBackends.size < 2; attempt++) {
      const run = await killMidStream(cluster!, request, 20);
      const killed = backendOf.get(run.killed.id)!;
      const finishedBy = backendOf.get(run.finishedBy ?? "");
      process.stderr.write(`canonical failover (tool chat): killed the ${killed} node at chunk 20, ${finishedBy} finished; text ${run.text === whole.text ? "identical" : "DIFFERENT"}\n`);
      expect(finishedBy).not.toBe(killed);
      expect(run.text).toBe(whole.text);
      expect(run.usage?.completion_tokens).toBe(64);
      killedBackends.add(killed);
      await cluster!.restartNode(run.killed);
    }
    expect([...killedBackends].sort()).toEqual(["embedded", "llama-server"]);
  }, 10 * 60_000);
});
