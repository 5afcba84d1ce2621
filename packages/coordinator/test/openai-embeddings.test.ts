import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import OpenAI from "openai";
import { type EmbedRequest, type NodeRegister, encodeEmbedding } from "@tessera/protocol";
import type { CoordinatorConfig } from "../src/config.js";
import { holdEscrow, topUp } from "../src/payments/ledger-rules.js";
import { clientCredit, operatorHeld } from "../src/store/ledger-accounts.js";
import { newNode, signedInject, testCoordinator, type TestCoordinator } from "./harness.js";
import { refusal } from "./openai-refusal.js";
import { ScriptedNode } from "./scripted-node.js";

/**
 * `/v1/embeddings` against scripted nodes over real sessions: the answer's shape through the official client, every
 * field refused by name, and nodes that lie (wrong count, dimension, NaN, token count) refused, the request moved.
 */
let t: TestCoordinator;
let baseUrl: string;
let client: OpenAI;
let nodes: ScriptedNode[];

const DIM = 8;
/** A deterministic vector per input text (or token list), as an honest node would send. */
const vectorFor = (item: string | number[], dim = DIM) => Array.from({ length: dim }, (_, i) => ((JSON.stringify(item).length * 31 + i * 7) % 13) / 13 - 0.5);
const itemsOf = (r: EmbedRequest) => ("texts" in r.input ? r.input.texts : r.input.tokens);
function honest(r: EmbedRequest, node: ScriptedNode): void {
  const items = itemsOf(r);
  node.send({ type: "embed.result", request_id: r.request_id, dimensions: DIM, embeddings: items.map((item) => encodeEmbedding(vectorFor(item))), prompt_tokens: items.length * 2 });
}

async function network(specs: Array<{ models: NodeRegister["models"] }>, overrides: Partial<CoordinatorConfig> = {}): Promise<void> {
  t = await testCoordinator(overrides);
  await t.coordinator.app.listen({ host: "127.0.0.1", port: 0 });
  baseUrl = `http://127.0.0.1:${(t.coordinator.app.server.address() as { port: number }).port}`;
  client = new OpenAI({ baseURL: `${baseUrl}/v1`, apiKey: t.token, maxRetries: 0 });
  nodes = [];
  for (const spec of specs) {
    const n = newNode();
    const reg: NodeRegister = { type: "register", public_key: n.id, version: "0.1.0", hardware: { cpu_cores: 4, ram_mb: 8192, gpus: [] }, models: spec.models, max_concurrency: 2 };
    const res = await signedInject(t, n.signer, "POST", "/api/v1/nodes/register", reg);
    if (res.statusCode !== 200) throw new Error(`registration refused: ${res.body}`);
    const node = new ScriptedNode(baseUrl, n.signer, () => Math.floor(t.clock.now() / 1000));
    await node.connect();
    node.onEmbed = honest;
    nodes.push(node);
  }
}
const OWNER = "key:key-test";
async function until<T>(fn: () => Promise<T | undefined>): Promise<T> {
  for (let i = 0; i < 1000; i++) {
    const v = await fn();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error("condition never held");
}
const EMBED_MODEL = { id: "embed", backend: "embedded", features: ["embeddings" as const] };
const CHAT_MODEL = { id: "tiny", backend: "embedded", features: ["chat" as const] };

afterEach(async () => {
  for (const n of nodes ?? []) await n.close();
  await t?.close();
});

async function post(body: unknown) {
  const res = await fetch(`${baseUrl}/v1/embeddings`, { method: "POST", headers: { authorization: `Bearer ${t.token}`, "content-type": "application/json" }, body: JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as { error?: { message: string; code: string; param: string | null } } & Record<string, unknown> };
}

describe("POST /v1/embeddings", () => {
  it("returns one vector per input through the official client (base64 by default, decoded), floats on request, usage", async () => {
    await network([{ models: [EMBED_MODEL] }, { models: [CHAT_MODEL] }]);
    const res = await client.embeddings.create({ model: "embed", input: ["a", "bb"] });
    expect(res.object).toBe("list");
    expect(res.model).toBe("embed");
    expect(res.data.map((d) => d.index)).toEqual([0, 1]);
    for (const [i, d] of res.data.entries()) {
      expect(d.object).toBe("embedding");
      expect(d.embedding).toHaveLength(DIM);
      expect(Array.from(d.embedding)).toEqual(Array.from(Float32Array.from(vectorFor(["a", "bb"][i]!))));
    }
    expect(res.usage).toEqual({ prompt_tokens: 4, total_tokens: 4 });
    const floats = await client.embeddings.create({ model: "embed", input: "a", encoding_format: "float" });
    expect(floats.data[0]!.embedding).toEqual(Array.from(Float32Array.from(vectorFor("a"))));
    const ids = await client.embeddings.create({ model: "embed", input: [[1, 2, 3], [4]] });
    expect(ids.data).toHaveLength(2);
    expect(nodes[0]!.embeds.at(-1)!.input).toEqual({ tokens: [[1, 2, 3], [4]] });
    expect(nodes[1]!.embeds).toHaveLength(0);
  });

  it("refuses every bad field by name, before any node is asked", async () => {
    await network([{ models: [EMBED_MODEL] }]);
    const cases: Array<[unknown, number, string, string | null, RegExp]> = [
      [{ input: "a" }, 400, "bad_request", "model", /model/],
      [{ model: "embed" }, 400, "bad_request", "input", /input/],
      [{ model: "embed", input: "" }, 400, "bad_request", "input", /empty string/],
      [{ model: "embed", input: [] }, 400, "bad_request", "input", /empty list/],
      [{ model: "embed", input: [[]] }, 400, "bad_request", "input.0", /empty list of tokens/],
      [{ model: "embed", input: Array.from({ length: 2049 }, () => "a") }, 400, "bad_request", "input", /at most 2048/],
      [{ model: "embed", input: 42 }, 400, "bad_request", "input", /string, a list of strings/],
      [{ model: "embed", input: [true] }, 400, "bad_request", "input.0", /strings, token ids or lists/],
      [{ model: "embed", input: ["a", 1] }, 400, "bad_request", "input.1", /string/],
      [{ model: "embed", input: ["a\u0000b"] }, 400, "bad_request", "input.0", /NUL/],
      [{ model: "embed", input: [2 ** 40] }, 400, "bad_request", "input.0", /at most 2147483647/],
      [{ model: "embed", input: [[1, -1]] }, 400, "bad_request", "input.0.1", /not negative/],
      [{ model: "embed", input: [1.5] }, 400, "bad_request", "input.0", /integers/],
      [{ model: "embed", input: "a", encoding_format: "hex" }, 400, "bad_request", "encoding_format", /float|base64/],
      [{ model: "embed", input: "a", dimensions: 4 }, 400, "unsupported_parameter", "dimensions", /dimensions is not supported/],
      [{ model: "embed", input: "a", temperature: 1 }, 400, "bad_request", "temperature", /unrecognized request argument: temperature/],
      [{ model: "embed", input: "a", user: 7 }, 400, "bad_request", "user", /user/],
      [{ model: "nope", input: "a" }, 404, "model_not_found", "model", /model "nope" not found; available models: embed/],
    ];
    for (const [body, status, code, param, message] of cases) {
      const res = await post(body);
      expect({ body, status: res.status, code: res.body.error?.code, param: res.body.error?.param }).toEqual({ body, status, code, param });
      expect(res.body.error!.message).toMatch(message);
    }
    expect(nodes[0]!.embeds).toHaveLength(0);
    // `user` is harmless bookkeeping: accepted and ignored.
    expect((await post({ model: "embed", input: "a", user: "u-1" })).status).toBe(200);
    // The official client shows the message of a refusal.
    const err = await refusal(() => client.embeddings.create({ model: "embed", input: "a", dimensions: 4 }));
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect(err.message).toMatch(/dimensions is not supported/);
  });

  it("an embedding request for a chat model is a readable 400 naming the endpoint to use", async () => {
    await network([{ models: [EMBED_MODEL] }, { models: [CHAT_MODEL] }]);
    const err = await refusal(() => client.embeddings.create({ model: "tiny", input: "a" }));
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect(err.code).toBe("unsupported_parameter");
    expect(err.param).toBe("model");
    expect(err.message).toMatch(/model "tiny" does not compute embeddings.*\/v1\/chat\/completions.*models that do: embed/);
  });

  it.each([
    ["too few vectors", (r: EmbedRequest) => ({ embeddings: [encodeEmbedding(vectorFor("x"))], dimensions: DIM }), /sent 1 vectors for 2 inputs/],
    ["a vector of another dimension", (r: EmbedRequest) => ({ embeddings: [encodeEmbedding(vectorFor("x")), encodeEmbedding(vectorFor("x", DIM - 1))], dimensions: DIM }), /vector 1 has 7 numbers/],
    ["NaN", (r: EmbedRequest) => ({ embeddings: [encodeEmbedding(vectorFor("x")), encodeEmbedding([Number.NaN, ...vectorFor("x", DIM - 1)])], dimensions: DIM }), /not finite/],
    ["an impossible token count", (r: EmbedRequest) => ({ embeddings: itemsOf(r).map((i) => encodeEmbedding(vectorFor(i))), dimensions: DIM, prompt_tokens: 1_000_000 }), /claimed 1000000 prompt tokens/],
  ])("a node that lies (%s) is refused and the request moves to another node", async (_what, lie, reason) => {
    await network([{ models: [EMBED_MODEL] }, { models: [EMBED_MODEL] }]);
    const liar = (r: EmbedRequest, node: ScriptedNode) => node.send({ type: "embed.result", request_id: r.request_id, prompt_tokens: 2, ...lie(r) });
    for (const n of nodes) n.onEmbed = liar;
    // Both lie: the request fails with a clear code and the reason.
    const both = await post({ model: "embed", input: ["a", "b"], encoding_format: "float" });
    expect(both.status).toBe(503);
    expect(both.body.error!.code).toBe("no_capacity");
    expect(both.body.error!.message).toMatch(reason);
    // One lies: the other's answer is the one the client gets.
    nodes[1]!.onEmbed = honest;
    const before = nodes[1]!.embeds.length;
    const res = await post({ model: "embed", input: ["a", "b"], encoding_format: "float" });
    expect(res.status).toBe(200);
    expect((res.body.data as Array<{ embedding: number[] }>)[1]!.embedding).toEqual(Array.from(Float32Array.from(vectorFor("b"))));
    expect(nodes[1]!.embeds.length).toBe(before + 1);
  });

  it("waits for a busy node to come free, as a job waits in the queue, rather than failing at once", async () => {
    await network([{ models: [EMBED_MODEL] }]);
    const held: EmbedRequest[] = [];
    nodes[0]!.onEmbed = (r) => void held.push(r);
    // Two requests fill the node's two slots; the third waits for one of them.
    const first = [post({ model: "embed", input: "a" }), post({ model: "embed", input: "b" })];
    await until(async () => (held.length === 2 ? true : undefined));
    const third = post({ model: "embed", input: "c" });
    await new Promise((r) => setTimeout(r, 200));
    expect(nodes[0]!.embeds).toHaveLength(2);
    nodes[0]!.onEmbed = honest;
    for (const r of held) honest(r, nodes[0]!);
    for (const res of [...(await Promise.all(first)), await third]) expect(res.status).toBe(200);
    expect(nodes[0]!.embeds).toHaveLength(3);
  });

  it("a node that vanishes mid-request: the request moves on at once; an input the model refuses is a 400", async () => {
    await network([{ models: [EMBED_MODEL] }, { models: [EMBED_MODEL] }]);
    for (const n of nodes) n.onEmbed = (_r, node) => void node.close();
    const gone = post({ model: "embed", input: "a" });
    const res = await gone;
    expect(res.status).toBe(503);
    expect(res.body.error!.message).toMatch(/went offline|no node/);
  });

  it("a node's refusal of the input itself (too long for its model) is the client's 400", async () => {
    await network([{ models: [EMBED_MODEL] }]);
    nodes[0]!.onEmbed = (r, node) => node.send({ type: "embed.error", request_id: r.request_id, code: "bad_request", message: "input.0 is 900 tokens; this model's context holds 511" });
    const res = await post({ model: "embed", input: "a" });
    expect(res.status).toBe(400);
    expect(res.body.error).toMatchObject({ code: "bad_request", param: "input", message: expect.stringMatching(/context holds 511/) });
  });

  it("is billed as a job with no output: escrow first (402 when short), one receipt at the input price for the node that answered, the rest back; a failed request is refunded", async () => {
    const prices = join(mkdtempSync(join(tmpdir(), "tessera-prices-")), "prices.json");
    // 1 USDC per 1K input tokens.
    writeFileSync(prices, JSON.stringify({ default: { input_per_1k: 1_000_000, output_per_1k: 10_000_000 } }));
    await network([{ models: [EMBED_MODEL] }], { pricesFile: prices });
    const store = t.coordinator.ctx.store;
    const credit = async () => (await store.getBalances([clientCredit(OWNER)])).get(clientCredit(OWNER)) ?? 0;

    const short = await post({ model: "embed", input: ["a", "bb"] });
    expect(short.status).toBe(402);
    expect(short.body.error).toMatchObject({ code: "insufficient_funds", message: expect.stringMatching(/up to \d+ input tokens.*send less input/) });
    expect(nodes[0]!.embeds).toHaveLength(0);

    await store.postTransaction(topUp(OWNER, 5_000_000, "test", new Date(t.clock.now())));
    const res = await post({ model: "embed", input: ["a", "bb"] });
    expect(res.status).toBe(200);
    expect(res.body.usage).toEqual({ prompt_tokens: 4, total_tokens: 4 });
    const [receipt] = await until(async () => {
      const list = await store.listReceipts({ clientKeyId: OWNER, limit: 10 });
      return list.length > 0 ? list : undefined;
    });
    expect(receipt).toMatchObject({ job_id: nodes[0]!.embeds[0]!.request_id, segment: 1, input_tokens: 4, output_tokens: 0, amount: 4_000, model: "embed", status: "held" });
    // The request id names the replica that held it (payments/job-billing.ts), within a node request id's 64.
    expect(receipt!.job_id).toMatch(new RegExp(`^emb-${t.coordinator.replica.id}_[A-Za-z0-9_-]{16}$`));
    expect(await until(async () => ((await credit()) === 5_000_000 - 4_000 ? true : undefined))).toBe(true);
    expect(await store.openEscrows({ limit: 10 })).toEqual([]);
    // The node's operator holds the amount less the platform fee.
    expect((await store.getBalances([operatorHeld(t.coordinator.ctx.registry.get(receipt!.node_id)!.operatorId)])).values().next().value).toBe(4_000 - receipt!.fee);

    nodes[0]!.onEmbed = (r, node) => node.send({ type: "embed.error", request_id: r.request_id, code: "internal_error", message: "out of memory" });
    const failed = await post({ model: "embed", input: ["a", "bb"] });
    expect(failed.status).toBe(503);
    expect(await until(async () => ((await store.openEscrows({ limit: 10 })).length === 0 ? true : undefined))).toBe(true);
    expect(await credit()).toBe(5_000_000 - 4_000);
  });

  it("an embedding escrow a crash left open is refunded at the next start", async () => {
    await network([{ models: [EMBED_MODEL] }]);
    const store = t.coordinator.ctx.store;
    await store.postTransaction(topUp(OWNER, 1_000, "test", new Date(t.clock.now())));
    await store.postTransaction(holdEscrow("emb-crashed", OWNER, 600, new Date(t.clock.now())));
    expect(await t.coordinator.ctx.billing!.reconcile()).toBe(1);
    expect((await store.getBalances([clientCredit(OWNER)])).get(clientCredit(OWNER))).toBe(1_000);
    expect(await store.openEscrows({ limit: 10 })).toEqual([]);
  });
});
