/**
 * Bookkeeping that must happen, but never ahead of a request's path: checking a node's signature over a finished
 * answer, settling the job and issuing its receipts, checking the node's countersignature. Those cost about a
 * millisecond of CPU a job (three BIP-340 operations and a few writes), and jobs finish in bursts: run inline, the
 * bookkeeping of the jobs that just ended held back the next request's route, its assignment and its first token.
 *
 * Each task runs in a turn of the event loop of its own (`setImmediate`, which Node runs after the poll phase), so I/O
 * that arrived meanwhile (a new request, a node's tokens) is handled before the next task starts. Tasks run in the
 * order given, one a turn; each caller gets its task's result or error. Nothing is dropped or reordered, only delayed
 * by at most the I/O of a turn per task ahead of it.
 */
export class AfterIoQueue {
  private readonly tasks: Array<() => void> = [];
  private scheduled = false;

  run<T>(task: () => T | Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.tasks.push(() => {
        try {
          resolve(task());
        } catch (err) {
          reject(err);
        }
      });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.tasks.shift()?.();
      if (this.tasks.length > 0) this.schedule();
    });
  }
}
