import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import { NODE_TIERS, type NodeTier } from "@tessera/protocol";
import type { NodeRegistry } from "./registry.js";

/**
 * The coordinator's Prometheus metrics, served at `GET /metrics`. One registry per coordinator instance (tests run
 * several in one process). Process metrics (CPU seconds, memory, event-loop lag) come from prom-client's defaults.
 */
export class CoordinatorMetrics {
  readonly registry = new Registry();
  readonly jobsFinished = new Counter({ name: "tessera_jobs_finished_total", help: "Jobs that ended, by status and error code", labelNames: ["status", "error"] as const, registers: [this.registry] });
  /** A job whose record another replica had ended (this one's lease had lapsed) when this one wrote it (replicas/design.md). */
  readonly jobsEndedElsewhere = new Counter({ name: "tessera_jobs_ended_elsewhere_total", help: "Jobs whose record another coordinator replica ended while they ran here", registers: [this.registry] });
  readonly completionTokens = new Counter({
    name: "tessera_completion_tokens_total",
    help: "Completion tokens relayed to clients, as the coordinator counts them (token ids where the node sent them, else one a text part)",
    registers: [this.registry],
  });
  readonly busMessages = new Counter({
    name: "tessera_bus_messages_total",
    help: "Messages this replica sent to and received from the replicas' bus, by direction and subject kind (beats, standing, commands, reports, sessions, frames)",
    labelNames: ["direction", "subject"] as const,
    registers: [this.registry],
  });
  readonly busBytes = new Counter({
    name: "tessera_bus_bytes_total",
    help: "Bytes of the messages counted by tessera_bus_messages_total",
    labelNames: ["direction", "subject"] as const,
    registers: [this.registry],
  });
  readonly busFaults = new Counter({
    name: "tessera_bus_faults_total",
    help: "Bus messages lost on this replica, by fault (handler_threw: handling a received message threw; too_large: refused, larger than the bus carries; closed: refused, the bus closed) and subject kind",
    labelNames: ["fault", "subject"] as const,
    registers: [this.registry],
  });
  readonly failovers = new Counter({ name: "tessera_failovers_total", help: "Jobs moved to another node after their node was lost or failed", registers: [this.registry] });
  readonly usageCorrections = new Counter({
    name: "tessera_usage_corrections_total",
    help: "Node usage claims the coordinator did not take as given, by kind: claim_ignored (exact token ids relayed), claim_clamped, over_budget, prompt_over_bound",
    labelNames: ["kind"] as const,
    registers: [this.registry],
  });
  readonly stalls = new Counter({
    name: "tessera_job_stalls_total",
    help: "Jobs taken back from a node that accepted them and then sent nothing within its progress deadline, by phase",
    labelNames: ["phase"] as const,
    registers: [this.registry],
  });
  readonly routingDecision = new Histogram({
    name: "tessera_routing_decision_seconds",
    help: "Time to choose a node for one job (filter + score + choose)",
    buckets: [0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003, 0.005, 0.01, 0.05],
    registers: [this.registry],
  });
  readonly routingDecisionCpu = new Histogram({
    name: "tessera_routing_decision_cpu_seconds",
    help: "Time choosing a node for one job while the coordinator's thread was on a CPU: wall time less run-queue waits on Linux (unlike wall time, not inflated when the machine is busy); elsewhere the process's CPU time",
    buckets: [0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003, 0.005, 0.01, 0.05],
    registers: [this.registry],
  });
  readonly resultCommitments = new Counter({
    name: "tessera_result_commitments_total",
    help: "Answers a node finished, by its signed result commitment: valid (kept with the segment), invalid, or missing",
    labelNames: ["outcome"] as const,
    registers: [this.registry],
  });
  readonly checks = new Counter({
    name: "tessera_checks_total",
    help: "Spot checks of delivered answers by reference nodes, by result (passed, failed, abandoned)",
    labelNames: ["result"] as const,
    registers: [this.registry],
  });
  readonly checksSkipped = new Counter({
    name: "tessera_checks_skipped_total",
    help: "Answers drawn for a spot check but not checked: not_checkable (sampled hotter than 1, sampled under a grammar, from a backend that renders tools itself, or without token ids) or no_reference",
    labelNames: ["reason"] as const,
    registers: [this.registry],
  });
  readonly stageChecks = new Counter({
    name: "tessera_stage_checks_total",
    help: "Checks of one stage of a sharded request (its saved inputs replayed on a reference holding the span), by result (passed, failed, abandoned)",
    labelNames: ["result"] as const,
    registers: [this.registry],
  });
  readonly stageChecksSkipped = new Counter({
    name: "tessera_stage_checks_skipped_total",
    help: "Stages drawn for a check but not checked: no_reference, too_large (saved inputs past the cap), busy (too many checks in flight), bad_record",
    labelNames: ["reason"] as const,
    registers: [this.registry],
  });
  readonly receiptSignatures = new Counter({ name: "tessera_receipt_signatures_total", help: "Nodes' answers to receipts they were asked to sign: signed (stored), refused (the node disputes it), invalid (a bad or foreign signature, never stored)", labelNames: ["outcome"] as const, registers: [this.registry] });
  readonly embeddingRequests = new Counter({ name: "tessera_embedding_requests_total", help: "/v1/embeddings requests that reached a node, by outcome (ok or the error code)", labelNames: ["outcome"] as const, registers: [this.registry] });
  readonly embeddingAttemptsFailed = new Counter({ name: "tessera_embedding_attempts_failed_total", help: "Embedding attempts on a node that gave no vectors (the request moved on), by reason: refused (a malformed answer), error, timeout, lost", labelNames: ["reason"] as const, registers: [this.registry] });
  readonly embeddingSeconds = new Histogram({ name: "tessera_embedding_seconds", help: "Time from an embedding request's first attempt to its end", buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60], registers: [this.registry] });
  readonly heartbeats = new Counter({ name: "tessera_heartbeats_total", help: "Signed node heartbeats accepted", registers: [this.registry] });
  readonly nodesMarkedOffline = new Counter({ name: "tessera_nodes_marked_offline_total", help: "Times a node went offline, by reason", labelNames: ["reason"] as const, registers: [this.registry] });
  readonly cooldownsStarted = new Counter({
    name: "tessera_node_cooldowns_total",
    help: "Routing cooldowns started by a node's offence on a job: failed, timed_out, stalled, lost (an offence during a cooldown starts none)",
    labelNames: ["offence"] as const,
    registers: [this.registry],
  });

  constructor(registry: NodeRegistry, activeJobs: () => { active: number; pending: number }) {
    collectDefaultMetrics({ register: this.registry });
    new Gauge({
      name: "tessera_nodes_online",
      help: "Nodes online now",
      registers: [this.registry],
      collect() {
        let n = 0;
        for (const node of registry.all()) if (node.online) n++;
        this.set(n);
      },
    });
    new Gauge({
      name: "tessera_jobs_in_flight",
      help: "Jobs waiting for (pending) or running on (active) a node",
      labelNames: ["state"] as const,
      registers: [this.registry],
      collect() {
        const { active, pending } = activeJobs();
        this.set({ state: "pending" }, pending);
        this.set({ state: "active" }, active - pending);
      },
    });
  }

  /** Gauges of the nodes known here by tier, and of those quarantined, read from the standing at each scrape. */
  observeStanding(tally: () => { tiers: Record<NodeTier, number>; quarantined: number }): void {
    new Gauge({
      name: "tessera_nodes_by_tier",
      help: "Nodes known to this coordinator by standing tier (probation, normal, trusted, suspect)",
      labelNames: ["tier"] as const,
      registers: [this.registry],
      collect() {
        const { tiers } = tally();
        for (const tier of NODE_TIERS) this.set({ tier }, tiers[tier]);
      },
    });
    new Gauge({
      name: "tessera_nodes_quarantined",
      help: "Nodes quarantined for likely cheating: routed no jobs, earnings held",
      registers: [this.registry],
      collect() {
        this.set(tally().quarantined);
      },
    });
  }

  /** With a bus: the other replicas this one hears, the nodes each holds and the bus's round trip to each (bus/replica-link.ts). */
  observePeers(peers: () => Array<{ replica: string; nodes: number; rttMs: number | undefined }>): void {
    const perPeer = (name: string, help: string, value: (peer: ReturnType<typeof peers>[number]) => number | undefined) =>
      new Gauge({
        name,
        help,
        labelNames: ["replica"] as const,
        registers: [this.registry],
        collect() {
          this.reset();
          for (const peer of peers()) {
            const v = value(peer);
            if (v !== undefined) this.set({ replica: peer.replica }, v);
          }
        },
      });
    perPeer("tessera_replica_peer_nodes", "Nodes held by each other replica this coordinator hears on the bus (a replica silent for 3.5 s is dropped)", (p) => p.nodes);
    perPeer(
      "tessera_replica_peer_rtt_seconds",
      "Round trip over the bus to each other replica and back, smoothed over about five beats (routing adds it to the round trip of that replica's nodes)",
      (p) => (p.rttMs === undefined ? undefined : p.rttMs / 1000),
    );
  }
}
