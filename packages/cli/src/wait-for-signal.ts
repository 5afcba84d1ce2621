/** What every long-running command says on its first signal, so an operator knows how to skip the drain. */
export const FORCE_HINT = "press Ctrl-C again to force";

/**
 * Resolves on the first SIGINT or SIGTERM, so the caller can shut down gracefully; `announce` says what happens now
 * (it should end with FORCE_HINT). A second signal exits at once (code 130) for an operator who will not wait for a
 * drain.
 */
export function waitForSignal(announce?: (signal: NodeJS.Signals) => void): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const first = (signal: NodeJS.Signals) => {
      process.off("SIGINT", first);
      process.off("SIGTERM", first);
      const again = (next: NodeJS.Signals) => {
        process.stderr.write(`${next} again: exiting without waiting\n`);
        process.exit(130);
      };
      process.once("SIGINT", again);
      process.once("SIGTERM", again);
      announce?.(signal);
      resolve(signal);
    };
    process.once("SIGINT", first);
    process.once("SIGTERM", first);
  });
}
