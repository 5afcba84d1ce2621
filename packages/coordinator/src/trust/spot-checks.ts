import { randomUUID } from "node:crypto";
import type { ChatMessage, CheckConstraint, CheckError, CheckScores, Sampling } from "@tessera/protocol";
import { checkVerdict, type Verdict } from "./check-verdict.js";
import { type SampledVerdict, sampledVerdict } from "./sampled-check.js";
import type { CheckPolicy } from "./check-policy.js";

/**
 * A delivered answer that one node produced alone and ended itself (its own finish: not cut by a stop sequence or
 * its token budget, which the job manager handles), as the job manager relayed it.
 */
export interface DeliveredAnswer {
  jobId: string;
  nodeId: string;
  model: string;
  messages: ChatMessage[];
  /** A raw-prompt job: the reference scores after the prompt fed as is, and must announce the `raw_prompt` feature. */
  rawPrompt?: boolean;
  /** Checked whatever the node's tier (a canary). */
  alwaysCheck?: boolean;
  sampling: Sampling;
  /** Every output token id, in order; undefined when the node did not report ids for all of its text. */
  outputTokens: number[] | undefined;
  finishReason: "stop" | "length";
  /** What the node reported, if it did (a node that claims nothing contradicts nothing). */
  claimedUsage: { promptTokens: number; completionTokens: number } | undefined;
  /** The node's log-probability of each output token, where it sent one for every token (the job asked for them). */
  logprobs?: number[];
  /** The prompt ids the node reported it ran (its `prompt` part): the reference compares them with its own rendering. */
  promptTokens?: number[];
}


/** Why a delivered answer was not checked although it was drawn. */
export type SkipReason = "not_checkable" | "no_reference";

export type SpotChecksDeps = CheckPolicy<SkipReason>;

interface PendingCheck {
  answer: DeliveredAnswer & { outputTokens: number[] };
  referenceId: string;
  /** How the reference's model file relates to the checked node's (logged with the verdict). */
  file: FileMatch;
  deadline: number;
}

/**
 * How a reference's model file relates to the checked node's: `same` when both report a SHA-256 and it is equal,
 * `unknown` when either reports none, `other` when both report one and they differ.
 */
export type FileMatch = "same" | "unknown" | "other";

export function fileMatch(checked: string | undefined, reference: string | undefined): FileMatch {
  if (checked === undefined || reference === undefined) return "unknown";
  return checked === reference ? "same" : "other";
}

/**
 * Spot checks of delivered answers by reference nodes (trust/design.md "Verification"): each delivered answer is drawn
 * with its node's tier rate; a reference of another operator, serving the same model on the same kind of backend and
 * able to score, scores the node's tokens by teacher forcing; the verdict moves the node's standing. The node is told
 * nothing, and the check runs after the client has its answer.
 */
export class SpotChecks {
  private readonly pending = new Map<string, PendingCheck>();

  constructor(private readonly deps: SpotChecksDeps) {}

  get inFlight(): number {
    return this.pending.size;
  }

  /** Whether some reference could check this node's answers for the model now. */
  hasReferenceFor(nodeId: string, model: string): boolean {
    return this.referencesFor(nodeId, model).ids.length > 0;
  }

  afterDelivery(answer: DeliveredAnswer): void {
    const rate = answer.alwaysCheck ? 1 : (this.deps.rateOverride ?? this.deps.standing.checkRate(answer.nodeId));
    if (!(this.deps.random() < rate)) return;
    const constraint = constraintOf(answer.sampling);
    const backend = this.deps.registry.get(answer.nodeId)?.models.find((m) => m.id === answer.model)?.backend;
    const outputTokens = checkableTokens(answer, constraint, backend);
    if (!outputTokens) return this.skip(answer, "not_checkable");
    const reference = this.pickReference(answer, constraint !== undefined);
    if (!reference) return this.skip(answer, "no_reference", constraint ? "no reference announces constrained_scoring (scoring under a grammar)" : undefined);
    const checkId = randomUUID();
    this.pending.set(checkId, { answer: { ...answer, outputTokens }, referenceId: reference.id, file: reference.file, deadline: this.deps.clock.now() + this.deps.timeoutMs });
    this.deps.messenger.send(reference.id, {
      type: "check.score",
      check_id: checkId,
      model: answer.model,
      messages: answer.messages,
      ...(answer.rawPrompt ? { raw_prompt: true } : {}),
      ...(answer.promptTokens ? { prompt_tokens: answer.promptTokens } : {}),
      ...(constraint ? { constraint } : {}),
      output_tokens: outputTokens,
    });
  }

  /** A reference's answer. Only the reference asked may answer, once. */
  onMessage(nodeId: string, message: CheckScores | CheckError): void {
    const check = this.pending.get(message.check_id);
    if (!check || check.referenceId !== nodeId) return;
    this.pending.delete(message.check_id);
    if (message.type === "check.error" && message.reason === "prompt_mismatch") {
      // The node's claimed prompt ids are not the model's rendering of the job's messages: a lie about its prompt.
      return this.conclude(check, nodeId, { passed: false, failures: ["prompt_mismatch"], stats: undefined });
    }
    if (message.type === "check.error") return this.abandon(check, `the reference could not score: ${message.message}`);
    let verdict: Pick<Verdict, "passed" | "failures" | "stats"> | SampledVerdict;
    const sampled = check.answer.sampling.temperature > 0;
    if (sampled && message.positions.some((p) => p.top_mass === undefined)) return this.abandon(check, "the reference sent no top-20 mass, which a sampled answer is judged by");
    try {
      verdict = sampled
        ? sampledVerdict(
            {
              outputTokens: check.answer.outputTokens,
              usage: check.answer.claimedUsage ?? { promptTokens: message.prompt_tokens, completionTokens: check.answer.outputTokens.length },
              maxTokens: check.answer.sampling.max_tokens,
              finishReason: check.answer.finishReason,
              topP: check.answer.sampling.top_p,
            },
            { promptTokens: message.prompt_tokens, positions: message.positions.map((p) => ({ token: p.token, rank: p.rank, topMass: p.top_mass! })) },
          )
        : checkVerdict(
        {
          outputTokens: check.answer.outputTokens,
          finishReason: check.answer.finishReason,
          usage: check.answer.claimedUsage ?? { promptTokens: message.prompt_tokens, completionTokens: check.answer.outputTokens.length },
          maxTokens: check.answer.sampling.max_tokens,
          greedy: check.answer.sampling.temperature === 0,
          ...(check.answer.logprobs?.length === check.answer.outputTokens.length ? { logprobs: check.answer.logprobs } : {}),
        },
        { promptTokens: message.prompt_tokens, positions: message.positions, eos: message.eos },
      );
    } catch (err) {
      // The reference scored other tokens than it was given: its answer says nothing about the node.
      return this.abandon(check, `the reference's scores do not match the answer: ${(err as Error).message}`);
    }
    this.conclude(check, nodeId, verdict);
  }

  private conclude(check: PendingCheck, referenceId: string, verdict: { passed: boolean; failures: readonly unknown[]; stats: unknown }): void {
    this.deps.standing.recordCheck(check.answer.nodeId, { passed: verdict.passed });
    this.deps.metrics?.checked(verdict.passed ? "passed" : "failed");
    const fields = { job: check.answer.jobId, node: check.answer.nodeId.slice(0, 12), reference: referenceId.slice(0, 12), file: check.file, stats: verdict.stats };
    if (verdict.passed) this.deps.logger.info(fields, "spot check passed");
    else this.deps.logger.warn({ ...fields, failures: verdict.failures }, "spot check failed");
  }

  /** Abandons checks whose reference did not answer in time (its session dropped, or it is slow). */
  tick(): void {
    const now = this.deps.clock.now();
    for (const [id, check] of this.pending) {
      if (now < check.deadline) continue;
      this.pending.delete(id);
      this.abandon(check, "the reference did not answer in time");
    }
  }

  private pickReference(answer: DeliveredAnswer, constrained: boolean): { id: string; file: FileMatch } | undefined {
    const { ids, file } = this.referencesFor(answer.nodeId, answer.model, answer.rawPrompt === true, constrained);
    if (ids.length === 0) return undefined;
    return { id: ids[Math.floor(this.deps.random() * ids.length)]!, file };
  }

  /**
   * The references that may check this node's answers for the model, all of one file class (trust/design.md "Spot
   * checks", Who): those holding the node's very file when any does, else those whose file is unknown (either side
   * reports no SHA-256: same model name and prompt rendering, as before files were reported), and only when neither
   * exists those holding another file. That last class is kept on purpose: a node that names a file no reference
   * holds (a made-up hash, or the honest hash of swapped weights or a cheaper quantisation under the model's name)
   * must not thereby escape every check and canary; it is judged by what the name means to the network's references.
   * `rawPrompt`: the reference must also take raw prompts (its model announces `raw_prompt`). `constrained`: the answer
   * was generated under a grammar, which only references that announce `constrained_scoring` can score under (the
   * embedded engine walks the grammar state; llama-server, vLLM and SGLang rank without it and refuse a constraint; a
   * node from before constraints existed would drop it and fail honest answers).
   */
  private referencesFor(nodeId: string, model: string, rawPrompt = false, constrained = false): { ids: string[]; file: FileMatch } {
    const { registry, standing, namedReferences } = this.deps;
    const node = registry.get(nodeId);
    if (!node) return { ids: [], file: "unknown" };
    const served = node.models.find((m) => m.id === model);
    const backend = served?.backend;
    const byFile: Record<FileMatch, string[]> = { same: [], unknown: [], other: [] };
    for (const ref of registry.all()) {
      if (ref.id === node.id || ref.operatorId === node.operatorId || !ref.online || ref.draining || !this.deps.messenger.reachable(ref.id)) continue;
      // Same model on a backend that renders prompts the same way: the same kind, or two that both render with the
      // one canonical renderer (node/src/prompt/; the checked node's prompt ids travel with the check and the
      // reference compares them with its own rendering).
      const m = ref.models.find(
        (r) =>
          r.id === model &&
          r.scoring === true &&
          samePromptRendering(r.backend, backend) &&
          (!rawPrompt || r.features?.includes("raw_prompt")) &&
          (!constrained || r.constrained_scoring === true),
      );
      if (!m) continue;
      if (standing.isQuarantined(ref.id)) continue;
      const named = namedReferences.has(ref.id) || namedReferences.has(ref.operatorId);
      if (named || standing.tier(ref.id) === "trusted") byFile[fileMatch(served?.sha256, m.sha256)].push(ref.id);
    }
    const file: FileMatch = byFile.same.length > 0 ? "same" : byFile.unknown.length > 0 ? "unknown" : "other";
    return { ids: byFile[file], file };
  }

  private skip(answer: DeliveredAnswer, reason: SkipReason, why?: string): void {
    this.deps.metrics?.skipped(reason);
    this.deps.logger.debug({ job: answer.jobId, node: answer.nodeId.slice(0, 12), reason, ...(why ? { why } : {}) }, "spot check drawn but skipped");
  }

  private abandon(check: PendingCheck, why: string): void {
    this.deps.metrics?.checked("abandoned");
    this.deps.logger.info({ job: check.answer.jobId, node: check.answer.nodeId.slice(0, 12), reference: check.referenceId.slice(0, 12), why }, "spot check abandoned");
  }
}

/**
 * Backends whose nodes render a chat with the canonical renderer (packages/node/src/backends/design.md "Canonical
 * prompt") and tokenise it with the model file's own vocabulary: the same GGUF gives the same prompt ids on any of them.
 */
const CANONICAL_PROMPT_BACKENDS: ReadonlySet<string> = new Set(["embedded", "llama-server"]);

function samePromptRendering(a: string | undefined, b: string | undefined): boolean {
  return a === b || (a !== undefined && b !== undefined && CANONICAL_PROMPT_BACKENDS.has(a) && CANONICAL_PROMPT_BACKENDS.has(b));
}

/** The grammar an answer was generated under (`check.score` `constraint`): its tools or response_format, if any. */
function constraintOf(s: Sampling): CheckConstraint | undefined {
  if (!s.tools && !s.response_format) return undefined;
  return {
    ...(s.tools ? { tools: s.tools } : {}),
    ...(s.tool_choice !== undefined ? { tool_choice: s.tool_choice } : {}),
    ...(s.parallel_tool_calls !== undefined ? { parallel_tool_calls: s.parallel_tool_calls } : {}),
    ...(s.response_format ? { response_format: s.response_format } : {}),
  };
}

/**
 * The answer's token ids when a check can judge it, else undefined. Greedy answers get the calibrated verdict
 * (check-verdict.ts); sampled ones at temperature ≤ 1 the exact bound of sampled-check.ts (hotter sampling has no
 * bound from the top 20). An answer under a grammar (JSON mode, tools) is judged the same ways, the reference ranking
 * each token among the tokens the grammar allows and reporting the allowed share of its top 20 for the sampled bound,
 * but only when its node ran the canonical prompt (`backend`: the checked node's; other backends render tools with
 * their own templates, which no reference reproduces).
 */
function checkableTokens(answer: DeliveredAnswer, constraint: CheckConstraint | undefined, backend: string | undefined): number[] | undefined {
  const s = answer.sampling;
  if (s.temperature > 1) return undefined;
  if (constraint && (backend === undefined || !CANONICAL_PROMPT_BACKENDS.has(backend))) return undefined;
  if (!answer.outputTokens || answer.outputTokens.length === 0) return undefined;
  return answer.outputTokens;
}
