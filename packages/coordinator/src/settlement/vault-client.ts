import { TesseraError } from "@tessera/protocol";
import {
  createPublicClient,
  createWalletClient,
  defineChain,
  getAddress,
  http,
  keccak256,
  stringToBytes,
  type Account,
  type Address,
  type Chain,
  type Hash,
  type Hex,
  type PublicClient,
  type Transport,
  type WalletClient,
} from "viem";
import { nonceManager, privateKeyToAccount } from "viem/accounts";
import { PAYOUT_VAULT, TEST_USDC } from "./contract-artifacts.js";
import { parseEvmAddress, parseRpcUrl } from "./chains.js";
import { settlementError } from "./settlement-errors.js";

/** The most recipients one `settle` call takes: about 40k gas each keeps a batch far below any block's gas limit. */
export const MAX_SETTLE_RECIPIENTS = 200;

/** The chain id anvil and Hardhat use unless told otherwise. */
const LOCAL_DEV_CHAIN_ID = 31337;

/** Micro-USDC (token base units): a bigint, or a number that is a safe integer. */
export type MicroUsdc = bigint | number;

/**
 * The on-chain id of a batch: keccak256 of the UTF-8 bytes of the ledger's batch id (a UUID or any string). One rule
 * for every caller, so the worker, the CLI and an auditor derive the same bytes32 from the same id.
 */
export function batchIdHash(batchId: string): Hex {
  if (batchId.length === 0) throw new TesseraError("bad_request", "a batch id cannot be empty");
  return keccak256(stringToBytes(batchId));
}

function toUnits(amount: MicroUsdc, what: string): bigint {
  if (typeof amount === "number" && !Number.isSafeInteger(amount)) throw new TesseraError("bad_request", `${what} must be a whole number of micro-USDC, got ${amount}`);
  const units = BigInt(amount);
  if (units <= 0n) throw new TesseraError("bad_request", `${what} must be more than 0 micro-USDC, got ${units}`);
  return units;
}

export interface SettlementReceipt {
  txHash: Hash;
  status: "success" | "reverted";
  blockNumber: bigint;
}

/** Where a batch was settled, recovered from its `BatchSettled` event. */
export interface FoundSettlement {
  txHash: Hash;
  blockNumber: bigint;
  count: bigint;
  total: bigint;
}

export interface SettlementConnectOptions {
  rpcUrl: string;
  /** The sending account's key (see readPayerKey). */
  privateKey: Hex;
  /** A name for the chain in messages; the chain itself is whatever the RPC says it is. */
  chainName?: string;
  /** How often to poll for receipts (default 1000 ms, or 100 ms on a local dev chain: chain id 31337). */
  pollingIntervalMs?: number;
  /** Per RPC request (default 15 s). */
  timeoutMs?: number;
}

type Clients = { public: PublicClient<Transport, Chain>; wallet: WalletClient<Transport, Chain, Account>; rpcUrl: string };

/**
 * Connects to an EVM JSON-RPC endpoint with one account. The chain is built from the RPC's own chain id, so the same
 * code pays on Base mainnet and on a local anvil started for tests. Throws `unreachable` when the RPC does not answer.
 */
export async function connectSettlement(options: SettlementConnectOptions): Promise<SettlementClient> {
  const rpcUrl = parseRpcUrl(options.rpcUrl);
  const transport = http(rpcUrl, { timeout: options.timeoutMs ?? 15_000, retryCount: 2 });
  let chainId: number;
  try {
    chainId = await createPublicClient({ transport }).getChainId();
  } catch (err) {
    throw settlementError(err, "connect to the chain", rpcUrl);
  }
  const chain = defineChain({
    id: chainId,
    name: options.chainName ?? `chain ${chainId}`,
    nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 },
    rpcUrls: { default: { http: [rpcUrl] } },
  });
  const pollingInterval = options.pollingIntervalMs ?? (chainId === LOCAL_DEV_CHAIN_ID ? 100 : 1_000);
  // The nonce manager hands out nonces in-process, so two sends in flight from one process do not collide.
  const account = privateKeyToAccount(options.privateKey, { nonceManager });
  return new SettlementClient({
    public: createPublicClient({ chain, transport, pollingInterval }),
    wallet: createWalletClient({ chain, transport, account, pollingInterval }),
    rpcUrl,
  });
}

/** One account on one chain: deploys the contracts and mints the test token; `vault()` works with a deployed vault. */
export class SettlementClient {
  constructor(private readonly clients: Clients) {}

  get chainId(): number {
    return this.clients.public.chain.id;
  }

  get account(): Address {
    return this.clients.wallet.account.address;
  }

  /** Deploys a PayoutVault holding `token` and paid out by `payer`; the connected account becomes its owner. */
  async deployVault({ token, payer }: { token: Address; payer: Address }): Promise<Address> {
    const args = [parseEvmAddress(token, "token address"), parseEvmAddress(payer, "payer address")] as const;
    return this.deploy("deploy the payout vault", () => this.clients.wallet.deployContract({ abi: PAYOUT_VAULT.abi, bytecode: PAYOUT_VAULT.bytecode, args }));
  }

  /** Deploys TestUsdc (6 decimals; the connected account mints). For tests and local networks only. */
  async deployTestUsdc(): Promise<Address> {
    return this.deploy("deploy the test token", () => this.clients.wallet.deployContract({ abi: TEST_USDC.abi, bytecode: TEST_USDC.bytecode }));
  }

  /** Mints TestUsdc to `to` and waits until it is mined. */
  async mint(token: Address, to: Address, amount: MicroUsdc): Promise<Hash> {
    const action = "mint test tokens";
    try {
      const hash = await this.clients.wallet.writeContract({
        address: parseEvmAddress(token, "token address"),
        abi: TEST_USDC.abi,
        functionName: "mint",
        args: [parseEvmAddress(to, "recipient"), toUnits(amount, "the amount")],
      });
      await this.mined(hash, action);
      return hash;
    } catch (err) {
      throw settlementError(err, action, this.clients.rpcUrl);
    }
  }

  /** `owner`'s balance of the ERC-20 `token`, in its base units. */
  async tokenBalance(token: Address, owner: Address): Promise<bigint> {
    try {
      return await this.clients.public.readContract({ address: token, abi: TEST_USDC.abi, functionName: "balanceOf", args: [owner] });
    } catch (err) {
      throw settlementError(err, "read a token balance", this.clients.rpcUrl);
    }
  }

  vault(address: Address): VaultClient {
    return new VaultClient(this.clients, parseEvmAddress(address, "vault address"));
  }

  private async deploy(action: string, send: () => Promise<Hash>): Promise<Address> {
    try {
      const receipt = await this.mined(await send(), action);
      if (!receipt.contractAddress) throw new TesseraError("internal_error", `${action}: the receipt names no contract address`);
      return getAddress(receipt.contractAddress);
    } catch (err) {
      throw settlementError(err, action, this.clients.rpcUrl);
    }
  }

  private async mined(hash: Hash, action: string) {
    const receipt = await this.clients.public.waitForTransactionReceipt({ hash });
    if (receipt.status !== "success") throw new TesseraError("conflict", `${action}: transaction ${hash} reverted`);
    return receipt;
  }
}

/** A deployed PayoutVault, seen by the connected account (the payer, to settle; anyone, to read). */
export class VaultClient {
  private token: Promise<Address> | undefined;

  constructor(
    private readonly clients: Clients,
    readonly address: Address,
  ) {}

  /**
   * Sends `settle` for this batch and returns its transaction hash at once, without waiting for it to be mined: the
   * caller records the hash first, then waits with `waitForReceipt`. The node simulates the call before it is sent,
   * so a batch that would revert (already settled, not the payer, too little in the vault) throws here and sends
   * nothing. Throws `bad_request` for bad input before any RPC call.
   */
  async settle(batchId: string, recipients: readonly Address[], amounts: readonly MicroUsdc[]): Promise<Hash> {
    const id = batchIdHash(batchId);
    if (recipients.length === 0) throw new TesseraError("bad_request", "a batch needs at least one recipient");
    if (recipients.length !== amounts.length) throw new TesseraError("bad_request", `${recipients.length} recipients but ${amounts.length} amounts`);
    if (recipients.length > MAX_SETTLE_RECIPIENTS) throw new TesseraError("bad_request", `a batch pays at most ${MAX_SETTLE_RECIPIENTS} recipients; split it`);
    const to = recipients.map((r, i) => parseEvmAddress(r, `recipient ${i}`));
    const units = amounts.map((a, i) => toUnits(a, `amount ${i}`));
    try {
      return await this.clients.wallet.writeContract({ address: this.address, abi: PAYOUT_VAULT.abi, functionName: "settle", args: [id, to, units] });
    } catch (err) {
      throw settlementError(err, `settle batch ${batchId}`, this.clients.rpcUrl);
    }
  }

  /** Waits until `hash` is mined with `confirmations` blocks on top (1: just mined). A revert is a status, not a throw. */
  async waitForReceipt(hash: Hash, confirmations = 1, timeoutMs = 300_000): Promise<SettlementReceipt> {
    try {
      const receipt = await this.clients.public.waitForTransactionReceipt({ hash, confirmations, timeout: timeoutMs });
      return { txHash: hash, status: receipt.status, blockNumber: receipt.blockNumber };
    } catch (err) {
      throw settlementError(err, `wait for transaction ${hash}`, this.clients.rpcUrl);
    }
  }

  async isSettled(batchId: string): Promise<boolean> {
    try {
      return await this.clients.public.readContract({ address: this.address, abi: PAYOUT_VAULT.abi, functionName: "isSettled", args: [batchIdHash(batchId)] });
    } catch (err) {
      throw settlementError(err, `read whether batch ${batchId} is settled`, this.clients.rpcUrl);
    }
  }

  /**
   * The transaction that settled `batchId`, or null if it is not settled (as of the latest block). Reads the block
   * the vault recorded for the batch and that block's `BatchSettled` log, so it needs no wide log scan (many RPCs
   * limit the block range of eth_getLogs).
   */
  async findSettlementTx(batchId: string): Promise<FoundSettlement | null> {
    const id = batchIdHash(batchId);
    try {
      const block = await this.clients.public.readContract({ address: this.address, abi: PAYOUT_VAULT.abi, functionName: "settledAt", args: [id] });
      if (block === 0n) return null;
      const logs = await this.clients.public.getContractEvents({
        address: this.address,
        abi: PAYOUT_VAULT.abi,
        eventName: "BatchSettled",
        args: { batchId: id },
        fromBlock: block,
        toBlock: block,
        strict: true,
      });
      const log = logs[0];
      if (!log) throw new TesseraError("internal_error", `batch ${batchId} is settled in block ${block}, but the RPC returned no BatchSettled log for it`);
      return { txHash: log.transactionHash, blockNumber: log.blockNumber, count: log.args.count, total: log.args.total };
    } catch (err) {
      throw settlementError(err, `find the settlement of batch ${batchId}`, this.clients.rpcUrl);
    }
  }

  /** The vault's own balance of its token, in micro-USDC. */
  async vaultBalance(): Promise<bigint> {
    return this.tokenBalance(this.address);
  }

  /** `owner`'s balance of the vault's token, in micro-USDC. */
  async tokenBalance(owner: Address): Promise<bigint> {
    try {
      const token = await this.tokenAddress();
      return await this.clients.public.readContract({ address: token, abi: TEST_USDC.abi, functionName: "balanceOf", args: [owner] });
    } catch (err) {
      throw settlementError(err, "read a token balance", this.clients.rpcUrl);
    }
  }

  /** The ERC-20 the vault pays in (fixed at deployment). */
  async tokenAddress(): Promise<Address> {
    this.token ??= this.clients.public.readContract({ address: this.address, abi: PAYOUT_VAULT.abi, functionName: "token" });
    try {
      return await this.token;
    } catch (err) {
      this.token = undefined; // not cached: the next call asks again
      throw settlementError(err, "read the vault's token", this.clients.rpcUrl);
    }
  }

  /** Owner only: lets `newPayer` settle from now on (and the old payer no longer). Waits until it is mined. */
  async setPayer(newPayer: Address): Promise<Hash> {
    const payer = parseEvmAddress(newPayer, "payer address");
    return this.ownerCall("change the vault's payer", () => this.clients.wallet.writeContract({ address: this.address, abi: PAYOUT_VAULT.abi, functionName: "setPayer", args: [payer] }));
  }

  /** Owner only: moves `amount` of the vault's token to `to`. Waits until it is mined. */
  async withdraw(to: Address, amount: MicroUsdc): Promise<Hash> {
    const args = [parseEvmAddress(to, "recipient"), toUnits(amount, "the amount")] as const;
    return this.ownerCall("withdraw from the vault", () => this.clients.wallet.writeContract({ address: this.address, abi: PAYOUT_VAULT.abi, functionName: "withdraw", args }));
  }

  private async ownerCall(action: string, send: () => Promise<Hash>): Promise<Hash> {
    try {
      const hash = await send();
      const receipt = await this.clients.public.waitForTransactionReceipt({ hash });
      if (receipt.status !== "success") throw new TesseraError("conflict", `${action}: transaction ${hash} reverted`);
      return hash;
    } catch (err) {
      throw settlementError(err, action, this.clients.rpcUrl);
    }
  }

  /** The address allowed to settle. */
  async payer(): Promise<Address> {
    try {
      return await this.clients.public.readContract({ address: this.address, abi: PAYOUT_VAULT.abi, functionName: "payer" });
    } catch (err) {
      throw settlementError(err, "read the vault's payer", this.clients.rpcUrl);
    }
  }
}
