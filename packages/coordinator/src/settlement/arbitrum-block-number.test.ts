import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createPublicClient, createTestClient, http, type Address } from "viem";
import solc from "solc";
import { startAnvil, type Anvil } from "@tessera/testkit";
import { PAYOUT_VAULT } from "./contract-artifacts.js";
import { batchIdHash, connectSettlement } from "./vault-client.js";

/**
 * On Arbitrum `block.number` is an estimate of the L1 block number, so the vault records ArbSys.arbBlockNumber()
 * there instead. Anvil has no ArbSys; a stand-in at address 100 that answers block.number + 1 000 000 shows which
 * one the vault recorded.
 */
const FAKE_ARBSYS = `// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;
contract FakeArbSys { function arbBlockNumber() external view returns (uint256) { return block.number + 1000000; } }`;

function fakeArbSysCode(): `0x${string}` {
  const input = { language: "Solidity", sources: { "F.sol": { content: FAKE_ARBSYS } }, settings: { evmVersion: "cancun", outputSelection: { "*": { "*": ["evm.deployedBytecode.object"] } } } };
  const output = JSON.parse(solc.compile(JSON.stringify(input))) as { contracts: Record<string, Record<string, { evm: { deployedBytecode: { object: string } } }>> };
  return `0x${output.contracts["F.sol"]!["FakeArbSys"]!.evm.deployedBytecode.object}`;
}

let anvil: Anvil;
beforeAll(async () => {
  anvil = await startAnvil({ chainId: 42161, accounts: 2 });
});
afterAll(async () => {
  await anvil?.stop();
});

describe("the vault on Arbitrum One (chain 42161)", () => {
  it("records the L2 block number that ArbSys gives, not block.number", async () => {
    await createTestClient({ mode: "anvil", transport: http(anvil.rpcUrl) }).setCode({ address: "0x0000000000000000000000000000000000000064", bytecode: fakeArbSysCode() });
    const client = await connectSettlement({ rpcUrl: anvil.rpcUrl, privateKey: anvil.accounts[0]!.privateKey, chainName: "arbitrum", pollingIntervalMs: 50 });
    expect(client.chainId).toBe(42161);
    const token = await client.deployTestUsdc();
    const address: Address = await client.deployVault({ token, payer: client.account });
    await client.mint(token, address, 5_000_000n);
    const vault = client.vault(address);
    const receipt = await vault.waitForReceipt(await vault.settle("arb-1", [anvil.accounts[1]!.address], [5_000_000n]));
    expect(receipt.status).toBe("success");
    const settledAt = await createPublicClient({ transport: http(anvil.rpcUrl) }).readContract({ address, abi: PAYOUT_VAULT.abi, functionName: "settledAt", args: [batchIdHash("arb-1")] });
    expect(settledAt).toBe(receipt.blockNumber + 1_000_000n);
  });
});
