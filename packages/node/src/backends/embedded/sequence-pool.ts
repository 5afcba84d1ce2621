import type { LlamaContext, LlamaContextSequence } from "node-llama-cpp";

/**
 * A small pool over one context's sequences: a request borrows one, generation runs on it, it comes back with its
 * history cleared. Waiters are served first in, first out; a waiter whose signal aborts leaves the queue.
 */
export class SequencePool {
  private readonly idle: LlamaContextSequence[] = [];
  private readonly waiters: Array<(sequence: LlamaContextSequence) => void> = [];

  constructor(private readonly context: LlamaContext) {}

  acquire(signal?: AbortSignal): Promise<LlamaContextSequence> {
    signal?.throwIfAborted();
    const free = this.idle.pop();
    if (free) return Promise.resolve(free);
    if (this.context.sequencesLeft > 0) return Promise.resolve(this.context.getSequence());
    return new Promise((resolve, reject) => {
      const waiter = (sequence: LlamaContextSequence) => {
        signal?.removeEventListener("abort", onAbort);
        resolve(sequence);
      };
      const onAbort = () => {
        const i = this.waiters.indexOf(waiter);
        if (i >= 0) this.waiters.splice(i, 1);
        reject(signal?.reason);
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.waiters.push(waiter);
    });
  }

  async release(sequence: LlamaContextSequence): Promise<void> {
    if (sequence.disposed) return;
    await sequence.clearHistory();
    const next = this.waiters.shift();
    if (next) next(sequence);
    else this.idle.push(sequence);
  }

  /** Requests waiting for a sequence now. */
  get waiting(): number {
    return this.waiters.length;
  }
}
