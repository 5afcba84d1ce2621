import { type ChatMessage, type ErrorCode, type JobStatus, type NeededFeature, type ResultPart, type Sampling, type TokenLogprob, type ToolCall, featuresNeeded } from "@tessera/protocol";

/**
 * What subscribers to a job's stream hear. `text` events carry only new text, never a repeat, and (when the job
 * asked for logprobs) the tokens that text came from.
 */
export type JobEvent =
  | { type: "text"; text: string; logprobs?: TokenLogprob[] }
  | { type: "done"; job: LiveJob }
  | { type: "failed"; code: ErrorCode; message: string };

/** One node's turn at a job. A job that fails over has several, each credited with the tokens it produced. */
export interface Attempt {
  nodeId: string;
  assignedAt: number;
  acceptDeadline: number;
  acceptedAt?: number;
  firstTokenAt?: number;
  /** The last part that carried tokens. */
  lastPartAt?: number;
  /** Tokens this attempt relayed: token ids where the node sent them, else one per text delta. */
  completionTokens: number;
  /** Every text delta so far carried its token ids (so `completionTokens` is exact). */
  exactTokens: boolean;
  /** UTF-8 bytes of the text this attempt relayed. */
  relayedBytes: number;
  /** The most completion tokens this attempt may produce (`max_tokens` less what earlier attempts produced). */
  budget: number;
  /** The most prompt tokens the node may claim, and the coordinator's own estimate (see honest-usage.ts). */
  promptBound: number;
  promptEstimate: number;
  /** The node's usage report: a claim, credited through honest-usage.ts. */
  reportedUsage?: { prompt_tokens: number; completion_tokens: number };
  /** What the attempt was credited with, once it ended. */
  credited?: number;
  /** Tokens of text already sent to the client that this attempt was given as its starting point. */
  prefixTokens: number;
  /** This attempt continues an answer another node began. */
  continuation: boolean;
  /** Jobs the node was running (this one included) when this attempt began; for solo-equivalent speed. */
  nodeLoadAtStart: number;
  /** The tools this attempt's node called; they become the job's only when the node finishes. */
  toolCalls?: ToolCall[];
  /** Once accepted: the instant by which the node must send its next part, or the job is taken back (a stall). */
  progressDeadline?: number;
  /** The sampling this node was sent (a continuation's `max_tokens` is what was left). */
  sentSampling: Sampling;
  /** This attempt's own token ids and log-probabilities as relayed (undefined once a delta came without). */
  relayedTokens: number[] | undefined;
  relayedLogprobs: number[] | undefined;
  /** The node's signed commitment to its answer (result-commitment.ts), checked when it finishes. */
  result?: ResultPart;
}

export interface Segment {
  nodeId: string;
  completionTokens: number;
  startedAt: number;
  endedAt: number;
  /** The node's result commitment and its signature, when it sent one that matched what was relayed. */
  resultCommitment?: string;
  resultSignature?: string;
}

/** A job in flight, held in memory by the coordinator that owns it. The store has the durable record. */
export class LiveJob {
  status: JobStatus = "pending";
  /**
   * Everything the nodes produced so far; a continuation starts from exactly this. The client has been sent its first
   * `sentChars` characters: the rest may be the start of a stop sequence and waits for the next text to tell.
   */
  text = "";
  sentChars = 0;
  /** Token ids behind `text`, when every node that produced it reported them. */
  tokenIds: number[] | undefined = [];
  /** Token ids reported without text yet (part of a character); they join `tokenIds` when their text arrives. */
  pendingTokenIds: number[] = [];
  /**
   * The prompt as token ids, as the job's first node rendered it (its `prompt` part; protocol prompt-tokens.ts): every
   * continuation and spot check gets exactly these, so a node on another backend runs the same prompt. Kept only for
   * chat jobs without tools, and only within the job's prompt-token bound.
   */
  promptTokenIds: number[] | undefined;
  /**
   * The model file `text` was generated with: the SHA-256 registered by the first node that wrote part of it and
   * reported one. A continuation prefers nodes holding it (scheduler/design.md "Continuations").
   */
  modelSha256: string | undefined;
  attempt: Attempt | undefined;
  readonly segments: Segment[] = [];
  readonly excludedNodes = new Set<string>();
  attempts = 0;
  queuedAt: number;
  startedAt: number | undefined;
  completedAt: number | undefined;
  promptTokens: number | undefined;
  finishReason: "stop" | "length" | undefined;
  /** The tools the answer called (the job then finished with them: OpenAI's `finish_reason: "tool_calls"`). */
  toolCalls: ToolCall[] | undefined;
  error: { code: ErrorCode; message: string } | undefined;
  readonly listeners = new Set<(event: JobEvent) => void>();
  /** Serialises this job's store writes so they land in order. */
  persisted: Promise<void> = Promise.resolve();
  /**
   * This process writes the job's record no more, nor settles its money: another replica ended it (this one's lease
   * had lapsed) and the record keeps what that replica wrote, or it was never stored (its first write failed).
   */
  recordClosed = false;
  /** What the job needs of its node's model (protocol model-features.ts): routing sends it only where all are offered. */
  readonly neededFeatures: readonly NeededFeature[];
  /**
   * With `logprobs`: each relayed token's log-probabilities, with the offset in `text` where its delta began. Those
   * before `sentLogprobs` went to the client with their text; those of a delta still without text wait in
   * `pendingLogprobs`.
   */
  readonly logprobs: Array<{ start: number; token: TokenLogprob }> = [];
  sentLogprobs = 0;
  pendingLogprobs: TokenLogprob[] = [];

  constructor(
    readonly id: string,
    readonly ownerId: string,
    readonly model: string,
    readonly messages: ChatMessage[],
    readonly sampling: Sampling,
    readonly pinnedNodeId: string | undefined,
    readonly createdAt: number,
    /** A raw-prompt job (session.ts `JobAssignment.raw_prompt`): `messages[0].content` is the whole prompt, no template. */
    readonly rawPrompt = false,
    /** Its answer is checked whatever its node's tier (a canary, job-manager.ts `SubmitRequest.alwaysCheck`). */
    readonly alwaysCheck = false,
  ) {
    this.queuedAt = createdAt;
    this.neededFeatures = featuresNeeded(sampling, { rawPrompt });
  }

  /** The client's tokens so far, in order (those whose text has been sent). */
  get sentTokenLogprobs(): TokenLogprob[] {
    return this.logprobs.slice(0, this.sentLogprobs).map((l) => l.token);
  }

  get completionTokens(): number {
    return this.segments.reduce((sum, s) => sum + s.completionTokens, 0);
  }

  /** What the client has been sent. */
  get visibleText(): string {
    return this.text.slice(0, this.sentChars);
  }

  /** The prompt's size in tokens as routing estimates it (4 characters a token), the text already sent included. */
  get estimatedPromptTokens(): number {
    const chars = this.messages.reduce((n, m) => n + m.content.length, 0) + this.text.length;
    return Math.ceil(chars / 4);
  }

  get finished(): boolean {
    return this.status === "completed" || this.status === "failed";
  }

  emit(event: JobEvent): void {
    for (const listener of this.listeners) listener(event);
  }
}
