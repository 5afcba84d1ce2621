import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createPublicClient, createWalletClient, defineChain, getAddress, http, parseEventLogs, type Address } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { startAnvil, type Anvil } from "@tessera/testkit";
import { PAYOUT_VAULT } from "./contract-artifacts.js";
import { batchIdHash, connectSettlement, type SettlementClient, type VaultClient } from "./vault-client.js";

/** The vault on a real local chain (anvil): what an operator's balance and the chain's log show after a settlement. */
let anvil: Anvil;
let owner: SettlementClient;
let payer: SettlementClient;
let stranger: SettlementClient;
let usdc: Address;
let vaultAddress: Address;
let vault: VaultClient;
const alice = getAddress("0x00000000000000000000000000000000000a11ce");
const bob = getAddress("0x0000000000000000000000000000000000000b0b");
const USDC = 1_000_000n;

beforeAll(async () => {
  anvil = await startAnvil({ accounts: 4 });
  const connect = (i: number) => connectSettlement({ rpcUrl: anvil.rpcUrl, privateKey: anvil.accounts[i]!.privateKey, chainName: "base", pollingIntervalMs: 50 });
  [owner, payer, stranger] = await Promise.all([connect(0), connect(1), connect(2)]);
  usdc = await owner.deployTestUsdc();
  vaultAddress = await owner.deployVault({ token: usdc, payer: payer.account });
  await owner.mint(usdc, vaultAddress, 100n * USDC);
  vault = payer.vault(vaultAddress);
});
afterAll(async () => {
  await anvil?.stop();
});

describe("PayoutVault on anvil", () => {
  it("is deployed with the owner's token and payer, holding what the owner funded", async () => {
    expect(owner.chainId).toBe(31337);
    expect(await vault.tokenAddress()).toBe(usdc);
    expect(await vault.payer()).toBe(payer.account);
    expect(await vault.vaultBalance()).toBe(100n * USDC);
  });

  it("settles a batch: each recipient is paid, the batch is marked, the events name every payment", async () => {
    const hash = await vault.settle("batch-1", [alice, bob], [3n * USDC, 1_500_000]);
    const receipt = await vault.waitForReceipt(hash, 1);
    expect(receipt.status).toBe("success");
    expect(await vault.tokenBalance(alice)).toBe(3n * USDC);
    expect(await vault.tokenBalance(bob)).toBe(1_500_000n);
    expect(await vault.vaultBalance()).toBe(100n * USDC - 4_500_000n);
    expect(await vault.isSettled("batch-1")).toBe(true);
    expect(await vault.isSettled("batch-2")).toBe(false);

    const { logs } = await anvilReceipt(hash);
    const events = parseEventLogs({ abi: PAYOUT_VAULT.abi, logs }).map((e) => ({ name: e.eventName, args: e.args }));
    const id = batchIdHash("batch-1");
    expect(events).toEqual([
      { name: "Paid", args: { batchId: id, recipient: alice, amount: 3n * USDC } },
      { name: "Paid", args: { batchId: id, recipient: bob, amount: 1_500_000n } },
      { name: "BatchSettled", args: { batchId: id, count: 2n, total: 4_500_000n } },
    ]);

    expect(await vault.findSettlementTx("batch-1")).toEqual({ txHash: hash, blockNumber: receipt.blockNumber, count: 2n, total: 4_500_000n });
    expect(await vault.findSettlementTx("batch-2")).toBeNull();
  });

  it("refuses to settle the same batch id twice, and pays nothing the second time", async () => {
    const before = await vault.vaultBalance();
    await expect(vault.settle("batch-1", [alice], [1n * USDC])).rejects.toMatchObject({ code: "conflict", message: /already settled/ });
    // Sent anyway (no simulation, fixed gas): the chain itself reverts it.
    const receipt = await vault.waitForReceipt(await sendUnchecked(1, "batch-1", [alice], [1n * USDC]));
    expect(receipt.status).toBe("reverted");
    expect(await vault.vaultBalance()).toBe(before);
    expect(await vault.tokenBalance(alice)).toBe(3n * USDC);
  });

  it("lets only the payer settle", async () => {
    await expect(stranger.vault(vaultAddress).settle("batch-3", [alice], [USDC])).rejects.toMatchObject({ code: "forbidden", message: /not the vault's payer/ });
    await expect(owner.vault(vaultAddress).settle("batch-3", [alice], [USDC])).rejects.toMatchObject({ code: "forbidden" });
    expect(await vault.isSettled("batch-3")).toBe(false);
  });

  it("reverts a batch larger than the vault's balance as a whole: no recipient is paid, the batch stays open", async () => {
    const before = { vault: await vault.vaultBalance(), alice: await vault.tokenBalance(alice), bob: await vault.tokenBalance(bob) };
    const tooMuch = before.vault; // bob's share alone empties the vault, so alice's (paid second) fails
    await expect(vault.settle("batch-4", [bob, alice], [tooMuch, 1n])).rejects.toMatchObject({ code: "conflict", message: /holds less than the batch total/ });
    const receipt = await vault.waitForReceipt(await sendUnchecked(1, "batch-4", [bob, alice], [tooMuch, 1n]));
    expect(receipt.status).toBe("reverted");
    expect({ vault: await vault.vaultBalance(), alice: await vault.tokenBalance(alice), bob: await vault.tokenBalance(bob) }).toEqual(before);
    expect(await vault.isSettled("batch-4")).toBe(false);
    // Funded, the same batch id settles.
    await owner.mint(usdc, vaultAddress, 1n);
    expect((await vault.waitForReceipt(await vault.settle("batch-4", [bob, alice], [tooMuch, 1n]))).status).toBe("success");
    expect(await vault.vaultBalance()).toBe(0n);
  });

  it("lets only the owner change the payer or withdraw", async () => {
    const ownerView = owner.vault(vaultAddress);
    await owner.mint(usdc, vaultAddress, 10n * USDC);
    await expect(vault.setPayer(stranger.account)).rejects.toMatchObject({ code: "forbidden", message: /not the vault's owner/ });
    await expect(vault.withdraw(payer.account, USDC)).rejects.toMatchObject({ code: "forbidden", message: /not the vault's owner/ });

    await ownerView.withdraw(owner.account, 4n * USDC);
    expect(await ownerView.vaultBalance()).toBe(6n * USDC);
    expect(await ownerView.tokenBalance(owner.account)).toBe(4n * USDC);

    await ownerView.setPayer(stranger.account);
    expect(await vault.payer()).toBe(stranger.account);
    await expect(vault.settle("batch-5", [alice], [USDC])).rejects.toMatchObject({ code: "forbidden" });
    const hash = await stranger.vault(vaultAddress).settle("batch-5", [alice], [USDC]);
    expect((await vault.waitForReceipt(hash)).status).toBe("success");
    await ownerView.setPayer(payer.account);
    expect(await vault.payer()).toBe(payer.account);
  });

  it("refuses bad batches before sending anything", async () => {
    await expect(vault.settle("b", [], [])).rejects.toMatchObject({ code: "bad_request" });
    await expect(vault.settle("b", [alice, bob], [1n])).rejects.toMatchObject({ code: "bad_request", message: /2 recipients but 1 amounts/ });
    await expect(vault.settle("b", [alice], [0n])).rejects.toMatchObject({ code: "bad_request", message: /more than 0/ });
    await expect(vault.settle("b", [alice], [1.5])).rejects.toMatchObject({ code: "bad_request", message: /whole number/ });
    await expect(vault.settle("b", ["0x0000000000000000000000000000000000000000"], [1n])).rejects.toMatchObject({ code: "bad_request", message: /zero address/ });
    await expect(vault.settle("", [alice], [1n])).rejects.toMatchObject({ code: "bad_request" });
  });

  it("refuses a vault over a token address with no code (such as mainnet USDC on this chain)", async () => {
    const baseUsdc = "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913";
    await expect(owner.deployVault({ token: baseUsdc, payer: payer.account })).rejects.toMatchObject({
      code: "bad_request",
      message: `deploy the payout vault: the token ${baseUsdc} is not a contract on this chain`,
    });
  });

  it("answers `timeout` when a transaction is not mined within the wait", async () => {
    const unknown = `0x${"ab".repeat(32)}` as const;
    await expect(vault.waitForReceipt(unknown, 1, 300)).rejects.toMatchObject({ code: "timeout" });
  });

  it("answers `unreachable` when the RPC does not answer", async () => {
    await expect(connectSettlement({ rpcUrl: "http://127.0.0.1:9", privateKey: anvil.accounts[0]!.privateKey })).rejects.toMatchObject({ code: "unreachable" });
  });
});

/** The receipt of `hash` straight from the node, with its raw logs. */
async function anvilReceipt(hash: `0x${string}`) {
  return createPublicClient({ transport: http(anvil.rpcUrl) }).getTransactionReceipt({ hash });
}

/** Sends `settle` from dev account `i` with a fixed gas limit, so nothing simulates it first: the chain decides. */
function sendUnchecked(i: number, batchId: string, recipients: Address[], amounts: bigint[]) {
  const chain = defineChain({ id: anvil.chainId, name: "anvil", nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 }, rpcUrls: { default: { http: [anvil.rpcUrl] } } });
  const wallet = createWalletClient({ chain, transport: http(anvil.rpcUrl), account: privateKeyToAccount(anvil.accounts[i]!.privateKey) });
  return wallet.writeContract({ address: vaultAddress, abi: PAYOUT_VAULT.abi, functionName: "settle", args: [batchIdHash(batchId), recipients, amounts], gas: 500_000n });
}
