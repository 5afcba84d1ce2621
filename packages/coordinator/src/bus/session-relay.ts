import { type CheckError, type CheckScores, type EmbedError, type EmbedResult, type StageNodeMessage, decodeActivationFrame } from "@tessera/protocol";
import type { Clock } from "../clock.js";
import type { Logger } from "../logger.js";
import type { NodeRegistry } from "../registry.js";
import type { NodeBoundMessage, NodeMessenger } from "../workers/node-messenger.js";
import { type Bus, DEFAULT_CLUSTER, type PublishOutcome, subjectsOf } from "./bus.js";
import { type NodeAnswer, SessionEnvelope, decodeBusMessage, encodeBusMessage } from "./bus-messages.js";
import { RemoteWorker } from "./remote-worker.js";
import { decodeFrameEnvelope, encodeFrameEnvelope } from "./stage-frame-envelope.js";

/** An answer awaited for another replica is forgotten after this long (its asker gave up long before). */
export const AWAITED_ANSWER_TTL_MS = 10 * 60_000;

/** Where this replica's own answers and stage traffic go: its sharding manager, spot checks and embedding requests. */
export interface SessionRelayIntake {
  stages: {
    onStageMessage(nodeId: string, message: StageNodeMessage): void;
    onBinary(nodeId: string, data: Uint8Array): void;
    onNodeLost(nodeId: string): void;
  };
  checks: { onMessage(nodeId: string, message: CheckScores | CheckError): void };
  embeddings: { onMessage(nodeId: string, message: EmbedResult | EmbedError): void; onNodeLost(nodeId: string, reason: string): void };
}

export interface SessionRelayDeps {
  bus: Bus;
  cluster?: string;
  replicaId: string;
  registry: NodeRegistry;
  clock: Clock;
  logger: Logger;
  intake: SessionRelayIntake;
  /** A node held here offered span files: the others should hear it now, not at the next beat. */
  onLocalOffer(): void;
}

/**
 * Reaches node sessions held by other replicas (design.md "Node sessions on other replicas"), for everything but jobs
 * (those travel as commands and reports, replica-link.ts):
 * - as this replica's `NodeMessenger`: a message for a node held here goes down its session; one for a node held by
 *   another replica goes to that replica's `sessions` subject (activation frames: `frames`), which hands it to the
 *   session;
 * - as the session hub's port for what nodes held here say: an answer another replica waits for goes back to it (a
 *   stage node's answers to the replica that last sent it stage traffic, the leader of sharded models; a check's
 *   scores and an embedding by their ids); everything else stays here. Offers stay here and reach the others in beats.
 * Receipts need no way back: a node's signature is checked against the shared record by the replica holding it.
 */
export class SessionRelay implements NodeMessenger {
  /** Nodes held here: the replica whose stage traffic they serve (the one that last sent them some). */
  private readonly stageControllers = new Map<string, string>();
  /** Answers other replicas wait for from nodes held here, by `check:<id>` or `embed:<id>`. */
  private readonly awaited = new Map<string, { origin: string; nodeId: string; since: number }>();
  private readonly unsubscribes: Array<() => void> = [];
  private readonly subjects: ReturnType<typeof subjectsOf>;

  constructor(private readonly d: SessionRelayDeps) {
    this.subjects = subjectsOf(d.cluster ?? DEFAULT_CLUSTER);
  }

  start(): void {
    const { bus, replicaId, logger } = this.d;
    this.unsubscribes.push(
      bus.subscribe(this.subjects.sessions(replicaId), (data) => {
        const decoded = decodeBusMessage(SessionEnvelope, data);
        if (!decoded.ok) return logger.warn({ why: decoded.why }, "malformed session message dropped");
        this.onEnvelope(decoded.message);
      }),
      bus.subscribe(this.subjects.frames(replicaId), (data) => this.onFrameEnvelope(data)),
    );
  }

  stop(): void {
    for (const unsubscribe of this.unsubscribes.splice(0)) unsubscribe();
  }

  /** Forgets answers awaited for longer than AWAITED_ANSWER_TTL_MS (a node that never answered); the coordinator's tick calls it. */
  tick(): void {
    const now = this.d.clock.now();
    for (const [key, a] of this.awaited) if (now - a.since > AWAITED_ANSWER_TTL_MS) this.awaited.delete(key);
  }

  // --- NodeMessenger: this replica's messages to nodes, wherever their sessions are.

  send(nodeId: string, message: NodeBoundMessage): boolean {
    const route = this.route(nodeId);
    if (route === "here") {
      if (isStageMessage(message)) this.stageControllers.set(nodeId, this.d.replicaId);
      this.d.registry.get(nodeId)!.session!.send(message);
      return true;
    }
    if (route === undefined) return false;
    // A message the bus refuses (a check's or an embedding's input larger than the bus carries) cannot reach the node.
    return this.publish(this.subjects.sessions(route), { type: "to_node", from: this.d.replicaId, node: nodeId, message }) === "sent";
  }

  sendBinary(nodeId: string, data: Uint8Array): boolean {
    const route = this.route(nodeId);
    if (route === "here") {
      this.stageControllers.set(nodeId, this.d.replicaId);
      this.d.registry.get(nodeId)!.session!.sendBinary(data);
      return true;
    }
    if (route === undefined) return false;
    // A frame the bus refuses (larger than the bus carries) is a stage out of reach: the token loop treats it as
    // lost and re-routes its span (a node held here takes any size), or fails the job when none is left.
    return this.d.bus.publish(this.subjects.frames(route), encodeFrameEnvelope("to_node", this.d.replicaId, nodeId, data)) === "sent";
  }

  reachable(nodeId: string): boolean {
    return this.route(nodeId) !== undefined;
  }

  /** Measured for a node held here; undefined for one held elsewhere (not measured across replicas yet). */
  rttMs(nodeId: string): number | undefined {
    return this.d.registry.get(nodeId)?.session?.rttMs();
  }

  // --- What nodes held here say (the session hub calls these).

  onStageMessage(nodeId: string, message: StageNodeMessage): void {
    if (message.type === "stage.offer") {
      this.d.intake.stages.onStageMessage(nodeId, message);
      return this.d.onLocalOffer();
    }
    const controller = this.stageControllers.get(nodeId);
    if (controller === undefined || controller === this.d.replicaId) return this.d.intake.stages.onStageMessage(nodeId, message);
    this.answer(controller, nodeId, message);
  }

  onBinary(nodeId: string, data: Uint8Array): void {
    const controller = this.stageControllers.get(nodeId);
    if (controller === undefined || controller === this.d.replicaId) return this.d.intake.stages.onBinary(nodeId, data);
    const outcome = this.d.bus.publish(this.subjects.frames(controller), encodeFrameEnvelope("from_node", this.d.replicaId, nodeId, data));
    // The leader hears now that this answer will never come, rather than at its timeout.
    if (outcome === "too_large") this.answer(controller, nodeId, { type: "stage.error", ...requestIdOf(data), code: "internal_error", message: TOO_LARGE });
  }

  onCheckMessage(nodeId: string, message: CheckScores | CheckError): void {
    const origin = this.takeAwaited(`check:${message.check_id}`, nodeId);
    if (origin === undefined) return this.d.intake.checks.onMessage(nodeId, message);
    this.answer(origin, nodeId, message);
  }

  onEmbedMessage(nodeId: string, message: EmbedResult | EmbedError): void {
    const origin = this.takeAwaited(`embed:${message.request_id}`, nodeId);
    if (origin === undefined) return this.d.intake.embeddings.onMessage(nodeId, message);
    this.answer(origin, nodeId, message);
  }

  /**
   * A node held here dropped or drains: its stages are gone, here and at the leader it served, and the replicas
   * waiting for its answers hear it now rather than at their timeouts.
   */
  onNodeLost(nodeId: string): void {
    this.d.intake.stages.onNodeLost(nodeId);
    const told = new Set<string>([this.d.replicaId]);
    const controller = this.stageControllers.get(nodeId);
    this.stageControllers.delete(nodeId);
    if (controller !== undefined) told.add(controller);
    for (const [key, a] of this.awaited) {
      if (a.nodeId !== nodeId) continue;
      this.awaited.delete(key);
      told.add(a.origin);
    }
    told.delete(this.d.replicaId);
    for (const origin of told) this.tellLost(origin, nodeId);
    if (this.d.registry.get(nodeId)?.session) this.d.onLocalOffer();
  }

  // --- The bus.

  private onEnvelope(envelope: SessionEnvelope): void {
    switch (envelope.type) {
      case "to_node": {
        const session = this.heldHere(envelope.node);
        if (!session) return this.tellLost(envelope.from, envelope.node);
        const { message, from } = envelope;
        if (isStageMessage(message)) this.stageControllers.set(envelope.node, from);
        else if (message.type === "check.score") this.await(`check:${message.check_id}`, from, envelope.node);
        else if (message.type === "embed.request") this.await(`embed:${message.request_id}`, from, envelope.node);
        return session.send(message);
      }
      case "from_node":
        // A node held here speaks for itself.
        if (this.heldHere(envelope.node)) return;
        return this.deliver(envelope.node, envelope.message);
      case "node_lost":
        if (this.heldHere(envelope.node)) return;
        this.d.intake.stages.onNodeLost(envelope.node);
        return this.d.intake.embeddings.onNodeLost(envelope.node, "its replica no longer holds it");
    }
  }

  private deliver(nodeId: string, message: NodeAnswer): void {
    switch (message.type) {
      case "check.scores":
      case "check.error":
        return this.d.intake.checks.onMessage(nodeId, message);
      case "embed.result":
      case "embed.error":
        return this.d.intake.embeddings.onMessage(nodeId, message);
      default:
        return this.d.intake.stages.onStageMessage(nodeId, message);
    }
  }

  private onFrameEnvelope(data: Uint8Array): void {
    const envelope = decodeFrameEnvelope(data);
    if (!envelope) return this.d.logger.warn({ bytes: data.length }, "malformed stage frame dropped");
    if (envelope.direction === "to_node") {
      const session = this.heldHere(envelope.node);
      if (!session) return this.tellLost(envelope.from, envelope.node);
      this.stageControllers.set(envelope.node, envelope.from);
      return session.sendBinary(envelope.frame);
    }
    if (this.heldHere(envelope.node)) return;
    this.d.intake.stages.onBinary(envelope.node, envelope.frame);
  }

  /** Tells `origin`, which sent traffic for `nodeId`, that this replica does not hold the node. */
  private tellLost(origin: string, nodeId: string): void {
    this.publish(this.subjects.sessions(origin), { type: "node_lost", node: nodeId });
  }

  private await(key: string, origin: string, nodeId: string): void {
    this.awaited.set(key, { origin, nodeId, since: this.d.clock.now() });
  }

  /** The replica waiting for this answer from this node, if another one is; it is waiting no more. */
  private takeAwaited(key: string, nodeId: string): string | undefined {
    const a = this.awaited.get(key);
    if (!a || a.nodeId !== nodeId) return undefined;
    this.awaited.delete(key);
    return a.origin;
  }

  /** An answer the bus refuses as too large reaches the asker as the matching error, so its request ends now. */
  private answer(origin: string, nodeId: string, message: NodeAnswer): void {
    const outcome = this.publish(this.subjects.sessions(origin), { type: "from_node", node: nodeId, message });
    if (outcome === "too_large") this.publish(this.subjects.sessions(origin), { type: "from_node", node: nodeId, message: errorInsteadOf(message) });
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

  private publish(subject: string, message: SessionEnvelope): PublishOutcome {
    return this.d.bus.publish(subject, encodeBusMessage(message));
  }
}

const TOO_LARGE = "the node's answer is larger than the replicas' bus carries";

/** The error that ends the asker's request in place of `answer`, which the bus could not carry. */
function errorInsteadOf(answer: NodeAnswer): NodeAnswer {
  switch (answer.type) {
    case "check.scores":
    case "check.error":
      return { type: "check.error", check_id: answer.check_id, message: TOO_LARGE };
    case "embed.result":
    case "embed.error":
      return { type: "embed.error", request_id: answer.request_id, code: "internal_error", message: TOO_LARGE };
    case "stage.loaded":
      return { type: "stage.error", stage_id: answer.stage_id, code: "internal_error", message: TOO_LARGE };
    case "stage.tokenized":
    case "stage.error":
      return { type: "stage.error", ...(answer.request_id !== undefined ? { request_id: answer.request_id } : {}), code: "internal_error", message: TOO_LARGE };
  }
}

/** The request an answer frame belongs to, where the frame says it. */
function requestIdOf(frame: Uint8Array): { request_id?: string } {
  try {
    return { request_id: decodeActivationFrame(frame).requestId };
  } catch {
    return {};
  }
}

function isStageMessage(message: NodeBoundMessage): boolean {
  return message.type.startsWith("stage.");
}
