import type { CoordinatorConfig } from "../config.js";
import type { Logger } from "../logger.js";
import { isPayoutChain, parseEvmAddress } from "../settlement/chains.js";
import { readPayerKey } from "../settlement/payer-key.js";
import { MAX_SETTLE_RECIPIENTS, connectSettlement } from "../settlement/vault-client.js";
import type { SettlementChain, SettlementWorkerChain } from "./settlement-worker.js";
import { vaultSettlementChain } from "./settlement-worker-vault.js";

/**
 * The chains this coordinator pays on: each one with an RPC URL and a vault, when the payer key file is set. Each
 * connects on first use and again after a failure, so a chain whose RPC is down at start is paid once it answers
 * (the worker reports the error for that pass and goes on with the other chains).
 */
export function configuredChains(config: CoordinatorConfig, logger: Logger): SettlementWorkerChain[] {
  const names = Object.keys(config.chainRpc).filter((name) => config.vaults[name] !== undefined);
  const unpaired = [...Object.keys(config.chainRpc), ...Object.keys(config.vaults)].filter((name) => !names.includes(name));
  if (unpaired.length > 0) logger.warn({ chains: [...new Set(unpaired)] }, "a payout chain needs both --chain-rpc and --vault; it is not settled");
  if (names.length === 0) return [];
  if (config.payerKeyFile === undefined) {
    logger.warn({ chains: names }, "no --payer-key-file: payouts are recorded but not settled on chain");
    return [];
  }
  const keyFile = config.payerKeyFile;
  return names.filter(isPayoutChain).map((name) => ({ name, chain: lazyChain(name, config.chainRpc[name]!, config.vaults[name]!, keyFile) }));
}

function lazyChain(name: string, rpcUrl: string, vaultAddress: string, keyFile: string): SettlementChain {
  let connected: Promise<SettlementChain> | undefined;
  const chain = () =>
    (connected ??= (async () => {
      const client = await connectSettlement({ rpcUrl, privateKey: await readPayerKey(keyFile), chainName: name });
      return vaultSettlementChain(client.vault(parseEvmAddress(vaultAddress, `--vault ${name}`)));
    })().catch((err: unknown) => {
      connected = undefined;
      throw err;
    }));
  return {
    maxRecipients: MAX_SETTLE_RECIPIENTS,
    settle: async (batchId, recipients, amounts) => (await chain()).settle(batchId, recipients, amounts),
    waitForReceipt: async (hash, confirmations) => (await chain()).waitForReceipt(hash, confirmations),
    isSettled: async (batchId) => (await chain()).isSettled(batchId),
    findSettlementTx: async (batchId) => (await chain()).findSettlementTx(batchId),
  };
}
