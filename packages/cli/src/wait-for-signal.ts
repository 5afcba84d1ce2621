/**
 * Resolves on the first SIGINT or SIGTERM, so the caller can shut down gracefully. A second signal exits at once
 * (code 130) for an operator who will not wait for a drain.
 */
export function waitForSignal(): Promise<NodeJS.Signals> {
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
      resolve(signal);
    };
    process.once("SIGINT", first);
    process.once("SIGTERM", first);
  });
}
