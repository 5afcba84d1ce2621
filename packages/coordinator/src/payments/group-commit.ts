/**
 * Group commit: calls that arrive while one database transaction is being written wait, and are written together in
 * the next one, each caller getting its own result. Under load the batches grow by themselves (a transaction takes
 * longer than the gap between calls); alone, a call waits one event-loop turn. When a batch fails, each of its items is
 * retried on its own, so one item's failure (an account short of funds) is that item's failure only.
 */
export class GroupCommit<T, R> {
  private queue: Array<{ item: T; resolve(result: R): void; reject(err: unknown): void }> = [];
  private flushing = false;

  constructor(
    private readonly writeAll: (items: readonly T[]) => Promise<R[]>,
    private readonly writeOne: (item: T) => Promise<R>,
    private readonly maxBatch = 128,
  ) {}

  add(item: T): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.queue.push({ item, resolve, reject });
      if (!this.flushing) {
        this.flushing = true;
        setImmediate(() => void this.flush());
      }
    });
  }

  private async flush(): Promise<void> {
    while (this.queue.length > 0) {
      const batch = this.queue.splice(0, this.maxBatch);
      try {
        const results = await this.writeAll(batch.map((b) => b.item));
        batch.forEach((b, i) => b.resolve(results[i]!));
      } catch {
        for (const b of batch) await this.writeOne(b.item).then(b.resolve, b.reject);
      }
    }
    this.flushing = false;
  }
}
