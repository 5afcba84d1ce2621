import type { Store } from "./store/types.js";

/**
 * The store calls still running, so a shutdown can close the store only after the last one has landed. Much of the
 * coordinator writes without waiting (job updates, a node's status, job metrics, the expiry sweep); a write that
 * reached a destroyed driver used to end a Ctrl-C with an error and a stack trace.
 */
export class PendingWrites {
  private readonly running = new Set<Promise<unknown>>();

  /** The same store, except that every call returning a promise is counted until it settles. */
  wrap(store: Store): Store {
    const track = (result: Promise<unknown>) => {
      const settled = result.then(
        () => undefined,
        () => undefined,
      );
      this.running.add(settled);
      void settled.then(() => this.running.delete(settled));
    };
    return new Proxy(store, {
      get(target, property) {
        const value: unknown = Reflect.get(target, property);
        if (typeof value !== "function" || property === "close") return value;
        return (...args: unknown[]) => {
          const result: unknown = (value as (...a: unknown[]) => unknown).apply(target, args);
          if (result instanceof Promise) track(result);
          return result;
        };
      },
    });
  }

  get count(): number {
    return this.running.size;
  }

  /** Resolves when every call counted so far, and any they led to, has settled. */
  async settled(): Promise<void> {
    while (this.running.size > 0) await Promise.all([...this.running]);
  }
}
