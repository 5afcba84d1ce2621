/**
 * What moves between coordinator replicas (design.md): a publish/subscribe bus of subjects carrying bytes. NATS is
 * the one implementation (nats-bus.ts); a coordinator without `--bus` has none and runs alone.
 */
export interface Bus {
  /**
   * Sends `data` to every subscriber of `subject` on other connections: a replica never hears what it published itself
   * (NATS `noEcho`). Never blocks (the client buffers while it reconnects) and never throws: a message the bus cannot
   * carry is refused, logged and counted, and the outcome says so, for the caller to end what waited on it.
   */
  publish(subject: string, data: Uint8Array): PublishOutcome;
  /**
   * Calls `handler` with every message on `subject`, in the order each publisher sent them; returns the unsubscribe.
   * A handler that throws loses that message only: the bus logs it and goes on delivering.
   */
  subscribe(subject: string, handler: (data: Uint8Array) => void): () => void;
  /**
   * The largest message the server takes in one publish (NATS `max_payload`), bytes, for a sender that can split what
   * it sends (a beat); 0 once the bus is closed.
   */
  maxPayload(): number;
  /** Waits until everything published so far reached the server. */
  flush(): Promise<void>;
  /** Drains the subscriptions and closes the connection. */
  close(): Promise<void>;
}

/**
 * What became of a published message: `sent` (handed to the connection, in chunks past the server's max_payload),
 * `too_large` (larger than the bus carries at all, design.md "Message size"), or `closed` (the bus is closing or closed).
 */
export type PublishOutcome = "sent" | "too_large" | "closed";

/**
 * The subjects the replicas of `cluster` talk on. Replica ids and cluster names are `[a-z0-9-]` only, so they are safe
 * inside a subject; the cluster keeps two networks (or two test runs) on one NATS server apart.
 */
export function subjectsOf(cluster: string) {
  const root = `tessera.v1.${cluster}`;
  return {
    /** Every replica's beat: it is alive, and the nodes whose sessions it holds. */
    beats: `${root}.beats`,
    /** Quarantines and releases, from the replica that decided them to all. */
    standing: `${root}.standing`,
    /** Assignments and cancels for the nodes whose sessions are on `replica`. */
    commands: (replica: string) => `${root}.replica.${replica}.commands`,
    /** What nodes on other replicas report about the jobs `replica` holds: accepted, rejected, parts, lost. */
    reports: (replica: string) => `${root}.replica.${replica}.reports`,
    /**
     * Messages to the node sessions `replica` holds, from replicas that are not jobs' (stage traffic, checks, receipts,
     * node commands, embeddings), and the nodes' answers to `replica` (session-relay.ts).
     */
    sessions: (replica: string) => `${root}.replica.${replica}.sessions`,
    /** Activation frames of sharded models, binary (stage-frame-envelope.ts), both ways as `sessions`. */
    frames: (replica: string) => `${root}.replica.${replica}.frames`,
  };
}

/** The cluster a coordinator's replicas join unless told otherwise. */
export const DEFAULT_CLUSTER = "main";
