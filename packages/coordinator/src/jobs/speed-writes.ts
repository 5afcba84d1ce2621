import type { Clock } from "../clock.js";
import type { Logger } from "../logger.js";
import type { JobMetricsSample, Store } from "../store/types.js";

/**
 * How long a node's speed samples wait to be written together. Routing reads speed from memory (SpeedMetrics); the
 * stored figures are only read at a restart and by `tessera coordinator nodes list`, so a second of samples lost to a
 * crash costs nothing that matters, and under load a node's dozens of jobs a second become one write.
 */
export const SPEED_WRITE_DELAY_MS = 1_000;

interface Pending {
  nodeId: string;
  model: string;
  samples: JobMetricsSample[];
  at: Date;
}

/**
 * Writes the speed each finished job measured to the store, a node and model's samples of the last
 * SPEED_WRITE_DELAY_MS in one upsert (the store folds them in order, exactly as if each were written alone). Was one
 * upsert a job: on PostgreSQL a round trip on the path of every job, for a figure only a restart reads.
 */
export class SpeedWrites {
  private readonly pending = new Map<string, Pending>();
  private timer: NodeJS.Timeout | undefined;
  private writing: Promise<void> = Promise.resolve();

  constructor(
    private readonly d: {
      store: Pick<Store, "recordJobMetrics">;
      clock: Clock;
      logger: Logger;
      delayMs?: number;
    },
  ) {}

  /** Queues one job's sample; written within the delay. */
  add(nodeId: string, model: string, sample: JobMetricsSample): void {
    const key = `${nodeId}\u0000${model}`;
    const at = new Date(this.d.clock.now());
    const entry = this.pending.get(key);
    if (entry) {
      entry.samples.push(sample);
      entry.at = at;
    } else {
      this.pending.set(key, { nodeId, model, samples: [sample], at });
    }
    this.timer ??= setTimeout(() => void this.flush(), this.d.delayMs ?? SPEED_WRITE_DELAY_MS).unref();
  }

  /** Writes everything queued now; resolves when it and every earlier write have landed (or failed, logged). */
  flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    const batch = [...this.pending.values()];
    this.pending.clear();
    this.writing = this.writing.then(() => Promise.all(batch.map((p) => this.write(p)))).then(() => undefined);
    return this.writing;
  }

  private async write(p: Pending): Promise<void> {
    try {
      await this.d.store.recordJobMetrics(p.nodeId, p.model, p.samples, p.at);
    } catch (err) {
      this.d.logger.error({ err, node: p.nodeId, model: p.model, samples: p.samples.length }, "could not record job metrics");
    }
  }
}
