import { describe, expect, it } from "vitest";
import { type CoordinatorMessage, type EmbedRequest, type ServedModel, encodeEmbedding } from "@tessera/protocol";
import { ManualClock } from "../clock.js";
import { createLogger } from "../logger.js";
import type { LiveNode } from "../registry.js";
import { EmbeddingRequests } from "./embedding-requests.js";
import { sessionMessenger } from "../sessions/session-messenger.js";

/** Routing and retries of embedding requests over fake sessions: which node is asked, what moves a request on. */
const EMBED: ServedModel = { id: "embed", backend: "embedded", features: ["embeddings"] };
const CHAT: ServedModel = { id: "embed", backend: "embedded", features: ["chat"] };

function node(id: string, models: ServedModel[], extra: Partial<LiveNode> = {}): LiveNode & { sent: EmbedRequest[] } {
  const sent: EmbedRequest[] = [];
  return {
    id,
    operatorId: `op-${id}`,
    retiredAt: undefined,
    version: "0.1.0",
    hardware: { cpu_cores: 1, ram_mb: 1, gpus: [] },
    models,
    maxConcurrency: 2,
    gpus: [],
    loadedModels: [],
    lastSeenAt: 0,
    online: true,
    draining: false,
    worker: undefined,
    session: { nodeId: id, send: (m: CoordinatorMessage) => void (m.type === "embed.request" && sent.push(m)), sendBinary: () => undefined, rttMs: () => 5, close: () => undefined },
    activeJobs: new Set(),
    jobsElsewhere: 0,
    storedHeartbeatAt: 0,
    storedHeartbeatState: "",
    sent,
    ...extra,
  };
}

/** `refused`: nodes the messenger shows reachable but whose messages it refuses (as the bus refuses one over its limit). */
function setup(nodes: LiveNode[], options: { quarantined?: string[]; timeoutMs?: number; refused?: string[] } = {}) {
  const outcomes: Array<[string, string]> = [];
  const sessions = sessionMessenger({ get: (id) => nodes.find((n) => n.id === id) });
  const requests = new EmbeddingRequests({
    registry: { all: () => nodes.values(), get: (id) => nodes.find((n) => n.id === id) },
    messenger: { ...sessions, send: (id, message) => !options.refused?.includes(id) && sessions.send(id, message) },
    standing: {
      reputation: () => 1,
      isQuarantined: (id) => options.quarantined?.includes(id) ?? false,
      isCoolingDown: () => false,
      recordOutcome: (id, outcome) => void outcomes.push([id, outcome]),
    },
    clock: new ManualClock(),
    logger: createLogger("silent"),
    timeoutMs: options.timeoutMs ?? 5_000,
  });
  return { requests, outcomes };
}

const INPUT = { texts: ["a", "b"] };
const answer = (r: EmbedRequest, dim = 3) => ({ type: "embed.result" as const, request_id: r.request_id, dimensions: dim, embeddings: [encodeEmbedding(Array(dim).fill(0.5)), encodeEmbedding(Array(dim).fill(-0.5))], prompt_tokens: 4 });
const tick = () => new Promise((r) => setTimeout(r, 0));

describe("embedding requests", () => {
  it("go only to online, non-quarantined, non-draining nodes whose model computes embeddings", async () => {
    const chatOnly = node("a-chat", [CHAT]);
    const draining = node("b-draining", [EMBED], { draining: true });
    const offline = node("c-offline", [EMBED], { online: false });
    const quarantined = node("d-quarantined", [EMBED]);
    const good = node("e-good", [EMBED]);
    const { requests } = setup([chatOnly, draining, offline, quarantined, good], { quarantined: ["d-quarantined"] });
    const running = requests.run("embed", INPUT);
    await tick();
    expect([chatOnly, draining, offline, quarantined].map((n) => n.sent.length)).toEqual([0, 0, 0, 0]);
    expect(good.sent).toHaveLength(1);
    requests.onMessage("e-good", answer(good.sent[0]!));
    expect((await running).nodeId).toBe("e-good");
    expect(requests.servedModels()).toEqual({ embeddings: new Set(["embed"]), other: new Set() });
  });

  it("a node that does not answer in time is passed over; its late answer to the same request id is ignored", async () => {
    const slow = node("a-slow", [EMBED]);
    const fast = node("b-fast", [EMBED]);
    const { requests } = setup([slow, fast], { timeoutMs: 300 });
    const running = requests.run("embed", INPUT, undefined, "emb-1");
    await tick();
    const first = slow.sent.length === 1 ? slow : fast;
    const second = first === slow ? fast : slow;
    expect(first.sent[0]!.request_id).toBe("emb-1");
    // Answered as soon as it is asked (polled: a loaded machine may be slow to run the timer).
    for (let i = 0; i < 500 && second.sent.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(second.sent[0]!.request_id).toBe("emb-1");
    requests.onMessage(first.id, answer(first.sent[0]!, 7)); // late, and from a node no longer asked: ignored
    requests.onMessage(second.id, answer(second.sent[0]!));
    const result = await running;
    expect(result.nodeId).toBe(second.id);
    expect(result.vectors[0]!.length).toBe(3);
  });

  it("a malformed answer counts against the node and moves the request; when every node failed, the last reason", async () => {
    const liar = node("a-liar", [EMBED]);
    const other = node("b-other", [EMBED]);
    const { requests, outcomes } = setup([liar, other]);
    const running = requests.run("embed", INPUT);
    await tick();
    const asked = liar.sent.length ? liar : other;
    requests.onMessage(asked.id, { ...answer(asked.sent[0]!), embeddings: [encodeEmbedding([1, 2, 3])] });
    await tick();
    const next = asked === liar ? other : liar;
    requests.onMessage(next.id, { type: "embed.error", request_id: next.sent[0]!.request_id, code: "internal_error", message: "out of memory" });
    await expect(running).rejects.toMatchObject({ code: "no_capacity", message: expect.stringMatching(/out of memory/) });
    expect(outcomes).toEqual([[asked.id, "failed"]]);
  });

  it("a request the messenger refuses to send moves on at once, not at the attempt's timeout, and counts nothing against the node", async () => {
    const far = node("a-far", [EMBED]);
    const near = node("b-near", [EMBED]);
    const { requests, outcomes } = setup([far, near], { timeoutMs: 600_000, refused: ["a-far"] });
    const running = requests.run("embed", INPUT);
    for (let i = 0; i < 50 && near.sent.length === 0; i++) await tick();
    expect(near.sent).toHaveLength(1);
    requests.onMessage("b-near", answer(near.sent[0]!));
    expect((await running).nodeId).toBe("b-near");
    expect(outcomes).toEqual([]);
  });

  it("a node that goes offline mid-request ends its attempt at once; a busy node is skipped", async () => {
    const a = node("a", [EMBED], { maxConcurrency: 1 });
    const b = node("b", [EMBED], { maxConcurrency: 1 });
    const { requests } = setup([a, b]);
    const first = requests.run("embed", INPUT);
    await tick();
    const busy = a.sent.length ? a : b;
    const free = busy === a ? b : a;
    const second = requests.run("embed", INPUT);
    await tick();
    expect(free.sent).toHaveLength(1); // the busy node's one slot is taken by the first request
    requests.onMessage(free.id, answer(free.sent[0]!));
    await second;
    requests.onNodeLost(busy.id, "session closed");
    await tick();
    expect(free.sent).toHaveLength(2); // the first request moved on at once
    requests.onMessage(free.id, answer(free.sent[1]!));
    expect((await first).nodeId).toBe(free.id);
    expect(requests.active).toBe(0);
  });
});
