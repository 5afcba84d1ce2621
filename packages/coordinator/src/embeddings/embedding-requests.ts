import { randomUUID } from "node:crypto";
import {
  type EmbedError,
  type EmbedResult,
  type EmbeddingInputList,
  type ErrorCode,
  TesseraError,
  checkEmbedResult,
  featuresOf,
} from "@tessera/protocol";
import type { Clock } from "../clock.js";
import type { Logger } from "../logger.js";
import type { LiveNode, NodeRegistry } from "../registry.js";
import type { NodeMessenger } from "../workers/node-messenger.js";
import { type NodeSnapshot, isWaitable, pick } from "../scheduler/index.js";
import type { NodeStanding } from "../trust/node-standing.js";

/** Nodes one request is tried on before it fails. */
export const MAX_EMBED_ATTEMPTS = 3;
/** How long one node has to answer one request (a full batch of long inputs on a CPU takes a while). */
export const DEFAULT_EMBED_TIMEOUT_MS = 60_000;

/** Why an attempt on a node ended without vectors. */
export type EmbedFailure = "refused" | "error" | "timeout" | "lost";

export interface EmbeddingMetrics {
  /** One request ended: `ok`, or the code it failed with. */
  request(outcome: "ok" | ErrorCode, seconds: number): void;
  /** One attempt on a node failed. */
  attemptFailed(reason: EmbedFailure): void;
}

export interface EmbeddingRequestsDeps {
  registry: Pick<NodeRegistry, "all" | "get">;
  /** How a request reaches a node, wherever its session is. */
  messenger: Pick<NodeMessenger, "send" | "reachable" | "rttMs">;
  standing: Pick<NodeStanding, "reputation" | "isQuarantined" | "isCoolingDown" | "recordOutcome">;
  clock: Clock;
  logger: Logger;
  timeoutMs?: number;
  /** How long a request may wait for a free node (`--queue-timeout`, as jobs wait); default 60 s. */
  queueTimeoutMs?: number;
  metrics?: EmbeddingMetrics;
}

/** How often a request waiting for a free node looks again. */
const FREE_NODE_POLL_MS = 25;

export interface Embedded {
  vectors: Float32Array[];
  promptTokens: number;
  nodeId: string;
}

interface Attempt {
  nodeId: string;
  input: EmbeddingInputList;
  timer: NodeJS.Timeout;
  settle(outcome: { ok: true; value: Embedded } | { ok: false; reason: EmbedFailure; code: ErrorCode; message: string }): void;
}

/**
 * Embedding requests (`/v1/embeddings`) on the nodes whose model announces `embeddings`. Not jobs: nothing streams,
 * nothing is stored, and a request is one round trip. Each attempt goes to the node the pure scheduler (`pick`) ranks
 * first among the online, admitted, non-quarantined, non-draining nodes with a free slot whose model computes
 * embeddings; a node that errs, times out, vanishes or sends an answer that fails `checkEmbedResult` is excluded and
 * the next one is tried, up to `MAX_EMBED_ATTEMPTS`. A refused (lying) answer counts against the node's standing as a
 * failed job.
 */
export class EmbeddingRequests {
  private readonly pending = new Map<string, Attempt>();
  /** Requests in flight per node: they take a slot as jobs do (the scheduler's `busy` filter). */
  private readonly inFlight = new Map<string, number>();

  constructor(private readonly deps: EmbeddingRequestsDeps) {}

  get active(): number {
    return this.pending.size;
  }

  /** The models some online node computes embeddings for, and those it serves only for chat. */
  servedModels(): { embeddings: Set<string>; other: Set<string> } {
    const embeddings = new Set<string>();
    const other = new Set<string>();
    for (const node of this.deps.registry.all()) {
      if (!node.online) continue;
      for (const m of node.models) (featuresOf(m).has("embeddings") ? embeddings : other).add(m.id);
    }
    for (const id of embeddings) other.delete(id);
    return { embeddings, other };
  }

  /**
   * Runs one request to the end: the vectors, or a TesseraError saying why none came. Every attempt carries the same
   * `requestId` (one at a time, and only the node asked may answer), which is what the node journals and the receipt
   * names.
   */
  async run(model: string, input: EmbeddingInputList, signal?: AbortSignal, requestId: string = randomUUID()): Promise<Embedded> {
    const started = this.deps.clock.now();
    const excluded = new Set<string>();
    let last: { code: ErrorCode; message: string } | undefined;
    try {
      for (let attempt = 0; attempt < MAX_EMBED_ATTEMPTS; attempt++) {
        if (signal?.aborted) throw new TesseraError("cancelled", "the client went away");
        const nodeId = await this.chooseWhenFree(model, input, excluded, signal);
        if (nodeId === undefined) break;
        const outcome = await this.attempt(requestId, nodeId, model, input);
        if (outcome.ok) {
          this.deps.metrics?.request("ok", (this.deps.clock.now() - started) / 1000);
          return outcome.value;
        }
        excluded.add(nodeId);
        this.deps.metrics?.attemptFailed(outcome.reason);
        this.deps.logger.warn({ node: nodeId.slice(0, 12), model, reason: outcome.reason, why: outcome.message }, "embedding attempt failed; trying another node");
        last = { code: outcome.code, message: outcome.message };
        // The input itself is at fault (too long for the model, a token outside its vocabulary): every node says so.
        if (outcome.reason === "error" && outcome.code === "bad_request") break;
      }
      if (last?.code === "bad_request") throw new TesseraError("bad_request", last.message, { param: "input" });
      if (last) throw new TesseraError(last.code === "timeout" ? "timeout" : "no_capacity", `no node could compute the embeddings; the last one: ${last.message}`);
      throw new TesseraError("no_capacity", `no node computing embeddings for model "${model}" is free right now`, { retryAfterSeconds: 1 });
    } catch (err) {
      this.deps.metrics?.request(err instanceof TesseraError ? err.code : "internal_error", (this.deps.clock.now() - started) / 1000);
      throw err;
    }
  }

  /** A node's answer. Only the node asked may answer, once. */
  onMessage(nodeId: string, message: EmbedResult | EmbedError): void {
    const attempt = this.pending.get(message.request_id);
    if (!attempt || attempt.nodeId !== nodeId) return;
    if (message.type === "embed.error") {
      return attempt.settle({ ok: false, reason: "error", code: message.code, message: `node ${nodeId.slice(0, 12)}: ${message.message}` });
    }
    const checked = checkEmbedResult(message, attempt.input);
    if (!checked.ok) {
      this.deps.standing.recordOutcome(nodeId, "failed");
      return attempt.settle({ ok: false, reason: "refused", code: "internal_error", message: `node ${nodeId.slice(0, 12)} sent a malformed answer (${checked.reason})` });
    }
    attempt.settle({ ok: true, value: { vectors: checked.vectors, promptTokens: checked.promptTokens, nodeId } });
  }

  /** A node went offline: its attempts end now, not at their timeout. */
  onNodeLost(nodeId: string, reason: string): void {
    for (const attempt of [...this.pending.values()]) {
      if (attempt.nodeId === nodeId) attempt.settle({ ok: false, reason: "lost", code: "node_disconnected", message: `node ${nodeId.slice(0, 12)} went offline (${reason})` });
    }
  }

  private attempt(requestId: string, nodeId: string, model: string, input: EmbeddingInputList): Promise<{ ok: true; value: Embedded } | { ok: false; reason: EmbedFailure; code: ErrorCode; message: string }> {
    const { messenger } = this.deps;
    if (!messenger.reachable(nodeId)) return Promise.resolve({ ok: false, reason: "lost", code: "node_disconnected", message: `node ${nodeId.slice(0, 12)} has no session` });
    const timeoutMs = this.deps.timeoutMs ?? DEFAULT_EMBED_TIMEOUT_MS;
    return new Promise((resolve) => {
      const attempt: Attempt = {
        nodeId,
        input,
        timer: setTimeout(() => attempt.settle({ ok: false, reason: "timeout", code: "timeout", message: `node ${nodeId.slice(0, 12)} did not answer within ${timeoutMs / 1000} s` }), timeoutMs),
        settle: (outcome) => {
          if (!this.pending.delete(requestId)) return;
          clearTimeout(attempt.timer);
          const left = (this.inFlight.get(nodeId) ?? 1) - 1;
          if (left > 0) this.inFlight.set(nodeId, left);
          else this.inFlight.delete(nodeId);
          resolve(outcome);
        },
      };
      attempt.timer.unref?.();
      this.pending.set(requestId, attempt);
      this.inFlight.set(nodeId, (this.inFlight.get(nodeId) ?? 0) + 1);
      // Refused on the way (the node left between the check and now, or the input is over the bus's message limit to
      // a node held by another replica): the attempt ends now, not at its timeout, and the next node is tried.
      if (!messenger.send(nodeId, { type: "embed.request", request_id: requestId, model, input })) {
        attempt.settle({ ok: false, reason: "lost", code: "node_disconnected", message: `node ${nodeId.slice(0, 12)} could not be sent the request` });
      }
    });
  }

  /** The scheduler's pick among nodes whose model computes embeddings; undefined when none can take it now. */
  /**
   * The node to try next. As a job waits in the queue for a busy node (not for an absent one), a request whose nodes
   * are all busy, or not yet connected, waits for one to come free, up to the queue timeout (real time: the wait is
   * the client's); undefined when none will (every node tried, quarantined or gone) or the wait ran out.
   */
  private async chooseWhenFree(model: string, input: EmbeddingInputList, excluded: ReadonlySet<string>, signal: AbortSignal | undefined): Promise<string | undefined> {
    const deadline = performance.now() + (this.deps.queueTimeoutMs ?? 60_000);
    for (;;) {
      const choice = this.choose(model, input, excluded);
      if ("nodeId" in choice) return choice.nodeId;
      if (!choice.waitable || performance.now() >= deadline || signal?.aborted) return undefined;
      await new Promise((resolve) => setTimeout(resolve, FREE_NODE_POLL_MS));
    }
  }

  private choose(model: string, input: EmbeddingInputList, excluded: ReadonlySet<string>): { nodeId: string } | { waitable: boolean } {
    const now = this.deps.clock.now();
    const snapshots: NodeSnapshot[] = [];
    for (const node of this.deps.registry.all()) snapshots.push(this.snapshot(node, now));
    const promptTokens = "texts" in input ? input.texts.reduce((n, t) => n + t.length, 0) : input.tokens.reduce((n, t) => n + t.length, 0);
    const result = pick({ model, promptTokens, maxTokens: 1 }, snapshots, now, { exclude: excluded, explainTop: 1 });
    if (result.ok) return { nodeId: result.nodeId };
    // Busy and draining nodes free up, and a node not tried yet may be reconnecting; tried, quarantined and absent ones do not.
    if (result.reason === "all_busy" || result.reason === "all_draining") return { waitable: true };
    const untried = [...this.deps.registry.all()].some((node) => !excluded.has(node.id) && node.models.some((m) => m.id === model && featuresOf(m).has("embeddings")));
    return { waitable: untried && isWaitable(result.reason, { modelKnown: true }) };
  }

  /** The node as the scheduler sees it, serving only the models it computes embeddings for. */
  private snapshot(node: LiveNode, now: number): NodeSnapshot {
    const { standing, messenger } = this.deps;
    const rttMs = messenger.rttMs(node.id);
    return {
      id: node.id,
      online: node.online && messenger.reachable(node.id),
      draining: node.draining,
      quarantined: standing.isQuarantined(node.id),
      models: node.models.filter((m) => featuresOf(m).has("embeddings")).map((m) => m.id),
      activeJobs: node.activeJobs.size + node.jobsElsewhere + (this.inFlight.get(node.id) ?? 0),
      maxConcurrency: node.maxConcurrency,
      ...(rttMs !== undefined ? { rttMs } : {}),
      reputation: standing.reputation(node.id),
      coolingDown: standing.isCoolingDown(node.id, now),
      perf: {},
    };
  }
}
