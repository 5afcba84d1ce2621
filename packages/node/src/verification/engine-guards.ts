import { TesseraError } from "@tessera/protocol";

/**
 * Runs calls one after another, in the order they were made: an engine holds one sequence (or one server slot) and
 * serves one job at a time. A failed call does not stop the ones queued behind it.
 */
export function oneAtATime(): <T>(fn: () => Promise<T>) => Promise<T> {
  let tail: Promise<unknown> = Promise.resolve();
  return <T>(fn: () => Promise<T>): Promise<T> => {
    const run = tail.then(fn, fn);
    tail = run.catch(() => undefined);
    return run;
  };
}

/** Refuses (`bad_request`) any token id that is not an integer in [0, vocabSize). */
export function checkVocabulary(name: string, tokens: readonly number[], vocabSize: number): void {
  for (const t of tokens) if (!Number.isInteger(t) || t < 0 || t >= vocabSize) throw new TesseraError("bad_request", `${name} token ${t} is outside the vocabulary (0..${vocabSize - 1})`);
}
