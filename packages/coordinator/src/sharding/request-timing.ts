/**
 * Where one sharded request's decode time goes, measured in the run itself (the `pipeline` bench reads the summary
 * from the coordinator's log). Per decode step (the prompt step is left out) and per stage of the path:
 *   - round trip: the coordinator's send of the frame to the answer's arrival at the coordinator's socket handler;
 *   - node: what the node reports it spent on the frame (receipt to send: decode, forward, sampling, encode);
 *   - compute: what the node reports `Stage.forward` took;
 * so round trip − node is the transport (WebSocket send and receive on both sides, loopback, process wake-ups),
 * and node − compute is the node's framing. Per token: the step time (first-stage send to first-stage send) minus
 * the round trips is the coordinator's own time (relay, decoding, sampling, detokenizing, emitting).
 * Plain sums: no allocation per step.
 */
export interface StageTimingSummary {
  layers: string;
  rtt_ms: number;
  node_ms: number;
  compute_ms: number;
}

export interface RequestTimingSummary {
  decode_tokens: number;
  token_ms: number;
  coordinator_ms: number;
  sample_ms: number;
  emit_ms: number;
  stages: StageTimingSummary[];
}

export class RequestTiming {
  private rtt: number[] = [];
  private node: number[] = [];
  private compute: number[] = [];
  private hops: number[] = [];
  private layers: string[] = [];
  private tokens = 0;
  private tokenMs = 0;
  private sampleMs = 0;
  private samples = 0;
  private emitMs = 0;
  private emits = 0;
  private lastStepStart: number | undefined;
  private counting = false;

  /** The path changed (start or failover): per-stage slots follow it. */
  setPath(layers: string[]): void {
    this.layers = layers;
    for (const a of [this.rtt, this.node, this.compute, this.hops]) while (a.length < layers.length) a.push(0);
  }

  /** A step's first frame is about to go out. `decode`: a one-token step after the prompt. */
  stepStart(now: number, decode: boolean): void {
    if (this.counting && this.lastStepStart !== undefined) {
      this.tokens++;
      this.tokenMs += now - this.lastStepStart;
    }
    this.counting = decode;
    this.lastStepStart = now;
  }

  hop(stage: number, rttMs: number, nodeUs: number, computeUs: number): void {
    if (!this.counting) return;
    this.hops[stage]! += 1;
    this.rtt[stage]! += rttMs;
    this.node[stage]! += nodeUs / 1000;
    this.compute[stage]! += computeUs / 1000;
  }

  sample(ms: number): void {
    if (!this.counting) return;
    this.sampleMs += ms;
    this.samples++;
  }

  emit(ms: number): void {
    if (!this.counting) return;
    this.emitMs += ms;
    this.emits++;
  }

  /** Means per decode token (ms); undefined before two decode steps. */
  summary(): RequestTimingSummary | undefined {
    if (this.tokens === 0) return undefined;
    const n = this.tokens;
    const stages = this.layers.map((layers, i) => {
      const h = Math.max(1, this.hops[i]!);
      return { layers, rtt_ms: round(this.rtt[i]! / h), node_ms: round(this.node[i]! / h), compute_ms: round(this.compute[i]! / h) };
    });
    const roundTrips = stages.reduce((a, s) => a + s.rtt_ms, 0);
    return {
      decode_tokens: n,
      token_ms: round(this.tokenMs / n),
      coordinator_ms: round(this.tokenMs / n - roundTrips),
      sample_ms: round(this.sampleMs / Math.max(1, this.samples)),
      emit_ms: round(this.emitMs / Math.max(1, this.emits)),
      stages,
    };
  }
}

function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}
