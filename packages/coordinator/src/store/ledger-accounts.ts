/**
 * The ledger's accounts (payments/design.md). Names are data: one function per kind, so no caller spells one by hand.
 * Every account but `world` is kept at or above zero; `world` is where money enters the network (a client's top-up,
 * the owner funding the reward pool) and, as its mirror, it goes negative by what the network holds.
 */
export const LEDGER_WORLD = "world";
export const PLATFORM_FEES = "platform:fees";
export const REWARD_POOL = "platform:reward_pool";

export const clientCredit = (clientKeyId: string): string => `client:${clientKeyId}:credit`;
/** What a client's running jobs hold: each job's share is in its `escrow:<job>` transaction until `close:<job>`. */
export const clientEscrow = (ownerId: string): string => `client:${ownerId}:escrow`;
export const operatorHeld = (operatorId: string): string => `operator:${operatorId}:held`;
export const operatorAvailable = (operatorId: string): string => `operator:${operatorId}:available`;
export const operatorPaid = (operatorId: string): string => `operator:${operatorId}:paid`;
export const payoutInFlight = (batchId: string): string => `payout:${batchId}:in_flight`;
