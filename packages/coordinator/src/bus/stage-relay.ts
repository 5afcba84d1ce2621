import type { StageCoordinatorMessage, StageNodeMessage } from "@tessera/protocol";
import type { Clock } from "../clock.js";
import type { Logger } from "../logger.js";
import { DEFAULT_PATH_RTT_MS } from "../placement/index.js";
import type { NodeRegistry } from "../registry.js";
import type { StageTransport } from "../sharding/stage-transport.js";
import { type Bus, DEFAULT_CLUSTER, subjectsOf } from "./bus.js";
import { StageEnvelope, decodeBusMessage, encodeBusMessage } from "./bus-messages.js";
import { BEAT_INTERVAL_MS } from "./replica-link.js";
import { RemoteWorker } from "./remote-worker.js";
import { decodeFrameEnvelope, encodeFrameEnvelope } from "./stage-frame-envelope.js";

/**
 * A replica waits this long after it starts before it may lead sharded models: long enough to have heard every live
 * replica's beat, so a replica joining a running cluster never places spans beside the leader.
 */
export const LEADER_SETTLE_MS = BEAT_INTERVAL_MS * 2;

/** This replica's sharding manager, as the relay feeds it. */
export interface StageIntake {
  onStageMessage(nodeId: string, message: StageNodeMessage): void;
  onBinary(nodeId: string, data: Uint8Array): void;
  onNodeLost(nodeId: string): void;
  setLeading(leading: boolean): void;
}

export interface StageRelayDeps {
  bus: Bus;
  cluster?: string;
  replicaId: string;
  registry: NodeRegistry;
  clock: Clock;
  logger: Logger;
  intake: StageIntake;
  /** The other replicas alive now (ReplicaLink.livePeers). */
  peers(): string[];
  /** A node held here offered span files: the others should hear it now, not at the next beat. */
  onLocalOffer(): void;
}

/**
 * Sharded models across replicas (design.md "Sharded models"). One replica leads them all: the live replica with the
 * lowest id places spans and runs every pipeline, which the others route jobs to like any node on another replica.
 * The relay carries the leader's stage traffic to nodes whose sessions are elsewhere, and back:
 * - as the leader's `StageTransport`: a stage message or frame for a node held here goes down its session; one for a
 *   node held by another replica goes to that replica's `stages` or `frames` subject;
 * - as the session hub's stage port: what a node held here answers goes to the replica that last sent it stage
 *   traffic (the leader), or to this replica's own manager; its offers always stay here and reach the others in beats.
 */
export class StageRelay implements StageTransport, StageIntake {
  /** Nodes held here: the replica whose stage traffic they serve (the one that last sent them some). */
  private readonly controllers = new Map<string, string>();
  private readonly unsubscribes: Array<() => void> = [];
  private readonly subjects: ReturnType<typeof subjectsOf>;
  private readonly startedAt: number;

  constructor(private readonly d: StageRelayDeps) {
    this.subjects = subjectsOf(d.cluster ?? DEFAULT_CLUSTER);
    this.startedAt = d.clock.now();
  }

  start(): void {
    const { bus, replicaId, logger } = this.d;
    this.unsubscribes.push(
      bus.subscribe(this.subjects.stages(replicaId), (data) => {
        const decoded = decodeBusMessage(StageEnvelope, data);
        if (!decoded.ok) return logger.warn({ why: decoded.why }, "malformed stage message dropped");
        this.onEnvelope(decoded.message);
      }),
      bus.subscribe(this.subjects.frames(replicaId), (data) => this.onFrameEnvelope(data)),
    );
  }

  stop(): void {
    for (const unsubscribe of this.unsubscribes.splice(0)) unsubscribe();
  }

  /** Leads when it has heard the cluster for LEADER_SETTLE_MS and no live replica has a lower id; the coordinator's tick calls it. */
  tick(): void {
    const settled = this.d.clock.now() - this.startedAt >= LEADER_SETTLE_MS;
    this.d.intake.setLeading(settled && this.d.peers().every((peer) => this.d.replicaId < peer));
  }

  // --- StageTransport: the leader's traffic down to stage nodes, wherever their sessions are.

  sendJson(nodeId: string, message: StageCoordinatorMessage): boolean {
    const route = this.route(nodeId);
    if (route === "here") {
      this.controllers.set(nodeId, this.d.replicaId);
      this.d.registry.get(nodeId)!.session!.send(message);
      return true;
    }
    if (route === undefined) return false;
    this.publish(this.subjects.stages(route), { type: "to_node", from: this.d.replicaId, node: nodeId, message });
    return true;
  }

  sendBinary(nodeId: string, data: Uint8Array): boolean {
    const route = this.route(nodeId);
    if (route === "here") {
      this.controllers.set(nodeId, this.d.replicaId);
      this.d.registry.get(nodeId)!.session!.sendBinary(data);
      return true;
    }
    if (route === undefined) return false;
    this.d.bus.publish(this.subjects.frames(route), encodeFrameEnvelope("to_node", this.d.replicaId, nodeId, data));
    return true;
  }

  reachable(nodeId: string): boolean {
    return this.route(nodeId) !== undefined;
  }

  /** A node held here: its session's round trip. One held elsewhere: the prior (not measured across replicas yet). */
  rttMs(nodeId: string): number {
    return this.d.registry.get(nodeId)?.session?.rttMs() ?? DEFAULT_PATH_RTT_MS;
  }

  // --- The session hub's stage port: what nodes held here say.

  onStageMessage(nodeId: string, message: StageNodeMessage): void {
    if (message.type === "stage.offer") {
      this.d.intake.onStageMessage(nodeId, message);
      return this.d.onLocalOffer();
    }
    const controller = this.controllers.get(nodeId);
    if (controller === undefined || controller === this.d.replicaId) return this.d.intake.onStageMessage(nodeId, message);
    this.publish(this.subjects.stages(controller), { type: "from_node", node: nodeId, message });
  }

  onBinary(nodeId: string, data: Uint8Array): void {
    const controller = this.controllers.get(nodeId);
    if (controller === undefined || controller === this.d.replicaId) return this.d.intake.onBinary(nodeId, data);
    this.d.bus.publish(this.subjects.frames(controller), encodeFrameEnvelope("from_node", this.d.replicaId, nodeId, data));
  }

  /** A node held here dropped or drains: its stages are gone, here and at the leader it served. */
  onNodeLost(nodeId: string): void {
    this.d.intake.onNodeLost(nodeId);
    const controller = this.controllers.get(nodeId);
    this.controllers.delete(nodeId);
    if (controller !== undefined && controller !== this.d.replicaId) this.publish(this.subjects.stages(controller), { type: "node_lost", node: nodeId });
    if (this.d.registry.get(nodeId)?.session) this.d.onLocalOffer();
  }

  setLeading(leading: boolean): void {
    this.d.intake.setLeading(leading);
  }

  // --- The bus.

  private onEnvelope(envelope: StageEnvelope): void {
    switch (envelope.type) {
      case "to_node": {
        const session = this.heldHere(envelope.node);
        if (!session) return this.publish(this.subjects.stages(envelope.from), { type: "node_lost", node: envelope.node });
        this.controllers.set(envelope.node, envelope.from);
        return session.send(envelope.message);
      }
      case "from_node":
        // Offers travel in beats; a node held here speaks for itself.
        if (envelope.message.type === "stage.offer" || this.heldHere(envelope.node)) return;
        return this.d.intake.onStageMessage(envelope.node, envelope.message);
      case "node_lost":
        if (this.heldHere(envelope.node)) return;
        return this.d.intake.onNodeLost(envelope.node);
    }
  }

  private onFrameEnvelope(data: Uint8Array): void {
    const envelope = decodeFrameEnvelope(data);
    if (!envelope) return this.d.logger.warn({ bytes: data.length }, "malformed stage frame dropped");
    if (envelope.direction === "to_node") {
      const session = this.heldHere(envelope.node);
      if (!session) return this.publish(this.subjects.stages(envelope.from), { type: "node_lost", node: envelope.node });
      this.controllers.set(envelope.node, envelope.from);
      return session.sendBinary(envelope.frame);
    }
    if (this.heldHere(envelope.node)) return;
    this.d.intake.onBinary(envelope.node, envelope.frame);
  }

  /** "here" for a node whose session this replica holds, the holding replica's id for one shown through another, else undefined. */
  private route(nodeId: string): "here" | string | undefined {
    const record = this.d.registry.get(nodeId);
    if (!record?.online) return undefined;
    if (record.session) return "here";
    return record.worker instanceof RemoteWorker ? record.worker.replica : undefined;
  }

  private heldHere(nodeId: string) {
    const record = this.d.registry.get(nodeId);
    return record?.online ? record.session : undefined;
  }

  private publish(subject: string, message: StageEnvelope): void {
    this.d.bus.publish(subject, encodeBusMessage(message));
  }
}
