import { TesseraError } from "@tessera/protocol";

/**
 * The coordinators a node may join, in order: `coordinator_url`, then `coordinator_replicas` (replicas of one
 * network on a shared database). The node talks to one at a time. When the one in use cannot be reached, the session
 * client moves on to the next (round the list), waiting its backoff's full jitter between tries, so a fleet whose
 * replica died spreads over the others instead of knocking at once; the node registers with the one it moves to.
 * With a single URL nothing ever moves.
 */
export class CoordinatorList {
  private index = 0;

  constructor(readonly urls: readonly string[]) {
    if (urls.length === 0) throw new TesseraError("bad_request", "a node needs at least one coordinator URL");
  }

  /** The coordinator in use. */
  get current(): string {
    return this.urls[this.index]!;
  }

  /** More than one to choose from. */
  get several(): boolean {
    return this.urls.length > 1;
  }

  /** Moves to the next coordinator (the first after the last) and returns it. */
  advance(): string {
    this.index = (this.index + 1) % this.urls.length;
    return this.current;
  }
}
