import {
  DELEGATION_FAILURES,
  KEY_ROTATION_GRACE_SECONDS,
  type NodeRegister,
  TesseraError,
  encodeNpub,
  hashJoinToken,
  verifyDelegation,
  verifyKeyRotation,
} from "@tessera/protocol";
import type { Clock } from "../clock.js";
import type { AdmissionMode } from "./admission-modes.js";
import type { OperatorRecord, Store } from "../store/types.js";

export interface Admitted {
  operatorId: string;
  delegationExpiresAt: Date | null;
  /** The key this one succeeds, when it registered with a signed rotation. */
  rotatedFrom: string | undefined;
}

const KEY_GRACE_MS = KEY_ROTATION_GRACE_SECONDS * 1000;

/**
 * Decides whether a registering node may serve, and under which operator (trust/design.md "Admission"). Refusals are
 * TesseraErrors: `unauthorized` for a bad delegation, rotation or retired key, `forbidden` for a banned operator or a
 * missing or spent join token, `pending_approval` while the owner has not approved the operator.
 */
export class Admission {
  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
    readonly mode: AdmissionMode,
  ) {}

  async admit(reg: NodeRegister): Promise<Admitted> {
    const now = this.clock.now();
    const nowSeconds = Math.floor(now / 1000);
    const nodeId = reg.public_key;
    const known = await this.store.getNode(nodeId);
    if (known?.retiredAt && now >= known.retiredAt.getTime() + KEY_GRACE_MS) {
      throw new TesseraError("unauthorized", `this node key was rotated on ${known.retiredAt.toISOString()} and its grace has ended: start the daemon with the new key`);
    }

    let operatorId = nodeId;
    let delegationExpiresAt: Date | null = null;
    if (reg.delegation) {
      const check = verifyDelegation(reg.delegation, nodeId, nowSeconds);
      if (!check.ok) throw new TesseraError("unauthorized", DELEGATION_FAILURES[check.reason], { param: "delegation" });
      operatorId = check.delegation.operator;
      delegationExpiresAt = new Date(check.delegation.expires_at * 1000);
    }
    if (known && known.operatorId !== operatorId && known.operatorId !== nodeId) {
      // A node key belongs to one operator for life: moving it would carry its standing (and its cheating) across.
      // The one move allowed is from being its own operator to a delegation (an operator key made later, or a node
      // registered before operators existed): its record stays with the key, and the new operator starts in probation.
      throw new TesseraError("forbidden", `this node key is registered under operator ${encodeNpub(known.operatorId)}; a node key cannot change operator (make a new key)`);
    }

    const rotatedFrom = reg.rotation ? await this.checkRotation(reg, operatorId, nowSeconds) : undefined;
    await this.admitOperator(operatorId, reg.join_token, now);
    if (rotatedFrom) await this.store.retireNodeKey(rotatedFrom, nodeId, new Date(now));
    return { operatorId, delegationExpiresAt, rotatedFrom };
  }

  /** Whether a key rotated away from is past its grace (its requests are refused; its node is evicted). */
  isRetired(retiredAt: Date | null): boolean {
    return retiredAt !== null && this.clock.now() >= retiredAt.getTime() + KEY_GRACE_MS;
  }

  private async checkRotation(reg: NodeRegister, operatorId: string, nowSeconds: number): Promise<string> {
    const rotation = reg.rotation!;
    if (!verifyKeyRotation(rotation, reg.public_key, nowSeconds)) {
      throw new TesseraError("unauthorized", "the key rotation's signature does not match the previous key", { param: "rotation" });
    }
    const previous = await this.store.getNode(rotation.previous_key);
    if (!previous) throw new TesseraError("not_found", `the previous key ${encodeNpub(rotation.previous_key)} never registered here`, { param: "rotation" });
    if (previous.operatorId !== operatorId) {
      throw new TesseraError("forbidden", "a rotated key must stay under the previous key's operator (sign the new key's delegation with the same operator key)", { param: "rotation" });
    }
    if (previous.successorId !== null && previous.successorId !== reg.public_key) {
      throw new TesseraError("conflict", `the previous key was already rotated to ${encodeNpub(previous.successorId)}`, { param: "rotation" });
    }
    return rotation.previous_key;
  }

  private async admitOperator(operatorId: string, joinToken: string | undefined, now: number): Promise<OperatorRecord> {
    const at = new Date(now);
    const existing = await this.store.getOperator(operatorId);
    if (existing?.status === "banned") {
      throw new TesseraError("forbidden", `operator ${encodeNpub(operatorId)} is banned on this coordinator${existing.statusReason ? ` (${existing.statusReason})` : ""}`);
    }
    if (existing?.status === "active") return existing;

    if (joinToken !== undefined) {
      const token = await this.store.useJoinToken(hashJoinToken(joinToken), at);
      if (!token) {
        throw new TesseraError("forbidden", "the join token is not valid here: unknown, expired, revoked or used up; ask the coordinator's owner for a new one", { param: "join_token" });
      }
      if (existing) {
        await this.store.setOperatorStatus(operatorId, "active", at, `join token ${token.id}`);
        return { ...existing, status: "active" };
      }
      return this.store.ensureOperator({ id: operatorId, status: "active", admittedVia: "token", joinTokenId: token.id, createdAt: at });
    }
    if (this.mode === "open") {
      if (!existing) return this.store.ensureOperator({ id: operatorId, status: "active", admittedVia: "open", joinTokenId: null, createdAt: at });
      // Waiting from when this coordinator ran under `approval`: the owner has since opened it.
      await this.store.setOperatorStatus(operatorId, "active", at, "admission is open");
      return { ...existing, status: "active" };
    }
    if (this.mode === "token" && !existing) {
      throw new TesseraError(
        "forbidden",
        "this coordinator admits new operators with a join token: `tessera register --join-token TOKEN` (its owner makes one with `tessera coordinator join-tokens create`)",
        { param: "join_token" },
      );
    }
    // approval (or an operator already waiting): wait for the owner.
    if (!existing) await this.store.ensureOperator({ id: operatorId, status: "pending", admittedVia: "approval", joinTokenId: null, createdAt: at });
    const npub = encodeNpub(operatorId);
    throw new TesseraError("pending_approval", `operator ${npub} waits for approval: the coordinator's owner runs \`tessera coordinator operators approve ${npub}\``, {
      retryAfterSeconds: 30,
    });
  }
}
