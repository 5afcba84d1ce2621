import type { Address, Hash } from "viem";
import { MAX_SETTLE_RECIPIENTS, type VaultClient } from "../settlement/vault-client.js";
import type { SettlementChain } from "./settlement-worker.js";

/** The settlement worker's view of a deployed PayoutVault (settlement/vault-client.ts). */
export function vaultSettlementChain(vault: VaultClient): SettlementChain {
  return {
    maxRecipients: MAX_SETTLE_RECIPIENTS,
    // The worker hands over addresses the payout route checked (settlement/chains.ts parseEvmAddress); the vault client
    // checks them again before sending.
    settle: (batchId, recipients, amounts) => vault.settle(batchId, recipients as readonly Address[], amounts),
    waitForReceipt: async (hash, confirmations) => ({ status: (await vault.waitForReceipt(hash as Hash, confirmations)).status }),
    isSettled: (batchId) => vault.isSettled(batchId),
    findSettlementTx: async (batchId) => (await vault.findSettlementTx(batchId))?.txHash,
  };
}
