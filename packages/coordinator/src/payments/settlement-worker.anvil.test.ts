import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { getAddress, type Address } from "viem";
import { startAnvil, type Anvil } from "@tessera/testkit";
import { systemClock } from "../clock.js";
import { connectSettlement, type VaultClient } from "../settlement/vault-client.js";
import { operatorPaid } from "../store/ledger-accounts.js";
import { openStore } from "../store/open-store.js";
import { balanceOf, expectLedgerSound, seedReceipt } from "../store/payout-queries.test-support.js";
import type { Store } from "../store/types.js";
import { SettlementWorker, type WorkerLogger } from "./settlement-worker.js";
import { vaultSettlementChain } from "./settlement-worker-vault.js";

/**
 * The worker on a real local chain, killed with SIGKILL between sending the settlement and recording it
 * (`TESSERA_CRASH_AT=settlement.sent`), then restarted: the operator's on-chain USDC equals the ledger's paid-out
 * amount, and the vault paid once.
 */
const USDC = 1_000_000;
const OP_A = "a".repeat(64);
const OP_B = "b".repeat(64);
const alice = getAddress("0x00000000000000000000000000000000000a11ce");
const bob = getAddress("0x0000000000000000000000000000000000000b0b");
const REPO = fileURLToPath(new URL("../../../../", import.meta.url));
const src = (path: string) => JSON.stringify(fileURLToPath(new URL(`../${path}`, import.meta.url)));
const silent: WorkerLogger = { info() {}, warn() {}, error() {} };

let anvil: Anvil;
let dir: string;
let dbPath: string;
let vault: VaultClient;
let vaultAddress: Address;

beforeAll(async () => {
  anvil = await startAnvil({ accounts: 2 });
  const connect = (i: number) => connectSettlement({ rpcUrl: anvil.rpcUrl, privateKey: anvil.accounts[i]!.privateKey, chainName: "base", pollingIntervalMs: 50 });
  const [owner, payer] = await Promise.all([connect(0), connect(1)]);
  const usdc = await owner.deployTestUsdc();
  vaultAddress = await owner.deployVault({ token: usdc, payer: payer.account });
  await owner.mint(usdc, vaultAddress, 100 * USDC);
  vault = payer.vault(vaultAddress);
  dir = mkdtempSync(join(tmpdir(), "tessera-settle-"));
  dbPath = join(dir, "coordinator.db");
});
afterAll(async () => {
  await anvil?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function withStore<T>(use: (store: Store) => Promise<T>): Promise<T> {
  const store = await openStore({ sqlitePath: dbPath, keyDir: join(dir, "keys") });
  try {
    return await use(store);
  } finally {
    await store.close();
  }
}

function worker(store: Store): SettlementWorker {
  return new SettlementWorker({ store, chains: [{ name: "base", chain: vaultSettlementChain(vault) }], schedule: "hourly", threshold: 0, confirmations: 1, clock: systemClock, logger: silent });
}

/** One settlement pass in a child process, armed to die at `settlement.sent`. */
function passThatIsKilled(): Promise<{ code: number | null; signal: NodeJS.Signals | null; output: string }> {
  const script = join(dir, "pass.mts");
  writeFileSync(
    script,
    `import { openStore } from ${src("store/open-store.ts")};
import { connectSettlement } from ${src("settlement/vault-client.ts")};
import { SettlementWorker } from ${src("payments/settlement-worker.ts")};
import { vaultSettlementChain } from ${src("payments/settlement-worker-vault.ts")};
const [dbPath, keyDir, rpcUrl, key, vault] = process.argv.slice(2);
const store = await openStore({ sqlitePath: dbPath, keyDir });
const client = await connectSettlement({ rpcUrl, privateKey: key, pollingIntervalMs: 50 });
const log = { info() {}, warn: (o, m) => console.error(m, o), error: (o, m) => console.error(m, o) };
const worker = new SettlementWorker({ store, chains: [{ name: "base", chain: vaultSettlementChain(client.vault(vault)) }], schedule: "hourly", threshold: 0, confirmations: 1, clock: { now: () => Date.now() }, logger: log });
console.log(JSON.stringify(await worker.runOnce()));
await store.close();
`,
  );
  const child = spawn(process.execPath, ["--import", "tsx", script, dbPath, join(dir, "keys"), anvil.rpcUrl, anvil.accounts[1]!.privateKey, vaultAddress], {
    cwd: REPO,
    env: { ...process.env, TESSERA_CRASH_AT: "settlement.sent" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout.on("data", (b: Buffer) => (output += b.toString()));
  child.stderr.on("data", (b: Buffer) => (output += b.toString()));
  return new Promise((resolve) => child.once("close", (code, signal) => resolve({ code, signal, output })));
}

describe("settlement worker on anvil", () => {
  it("killed between sending and recording, restarted: each operator is paid once, on chain as in the ledger", async () => {
    await withStore(async (store) => {
      await seedReceipt(store, OP_A, { amount: 3 * USDC, fee: 450_000 });
      await seedReceipt(store, OP_B, { amount: 2 * USDC, reward: 250_000 });
      await store.setPayoutAddress({ operatorId: OP_A, chain: "base", address: alice, updatedAt: new Date() });
      await store.setPayoutAddress({ operatorId: OP_B, chain: "base", address: bob, updatedAt: new Date() });
    });

    const killed = await passThatIsKilled();
    expect({ signal: killed.signal, output: killed.output }).toEqual({ signal: "SIGKILL", output: "" });
    const [batch] = await withStore((store) => store.listPayoutBatches({ limit: 10 }));
    // Sent (and mined: anvil mines at once), never recorded.
    expect(batch).toMatchObject({ status: "created", txHash: null, total: 2_550_000 + 2_250_000 });
    expect(await vault.isSettled(batch!.id)).toBe(true);

    await withStore(async (store) => {
      const [report] = await worker(store).runOnce();
      expect(report).toMatchObject({ chain: "base", confirmed: [batch!.id], failed: [], pending: [] });
      expect(await store.getPayoutBatch(batch!.id)).toMatchObject({ status: "confirmed", txHash: (await vault.findSettlementTx(batch!.id))!.txHash });
      expect(await vault.tokenBalance(alice)).toBe(BigInt(await balanceOf(store, operatorPaid(OP_A))));
      expect(await vault.tokenBalance(bob)).toBe(BigInt(await balanceOf(store, operatorPaid(OP_B))));
      expect(await vault.tokenBalance(alice)).toBe(2_550_000n);
      expect(await vault.tokenBalance(bob)).toBe(2_250_000n);
      expect(await vault.vaultBalance()).toBe(BigInt(100 * USDC - 4_800_000));

      // A later request is paid on top, once.
      await seedReceipt(store, OP_A, { amount: USDC });
      await store.requestPayout(OP_A, new Date());
      const [later] = await worker(store).runOnce();
      expect(later!.confirmed).toHaveLength(1);
      expect(await vault.tokenBalance(alice)).toBe(3_550_000n);
      expect(await balanceOf(store, operatorPaid(OP_A))).toBe(3_550_000);
      expect((await worker(store).runOnce())[0]).toMatchObject({ confirmed: [], failed: [], pending: [] });
      expect(await vault.vaultBalance()).toBe(BigInt(100 * USDC - 5_800_000));
      await expectLedgerSound(store);
    });
  });
});
