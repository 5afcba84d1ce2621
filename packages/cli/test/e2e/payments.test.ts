import { copyFileSync, existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { verifyReceipt } from "@tessera/protocol";
import { type Anvil, ManagedProcess, TESSERA_BIN, freePort, makeTinyModel, startAnvil, waitUntil } from "@tessera/testkit";

/**
 * Must-show 2 of the payments issue, on real processes: a coordinator, two daemons on the embedded engine under one
 * operator key, and anvil with the payout vault. A client with 5 USDC of credit runs jobs, one of which fails over
 * mid-stream (its node is frozen with SIGSTOP, so the job moves on, and thawed afterwards to sign its receipt). Every
 * receipt verifies; the operator's earnings equal its receipts less the fee; after the hold (30 s here instead of 7 days)
 * the auto-payout settles on anvil, and the coordinator is SIGKILLed between sending the settlement transaction and
 * recording it (the crash-point hook), then restarted: the operator is paid exactly once.
 */
const ENV = { ...process.env, TESSERA_HOME: "", TESSERA_BACKEND: "", TESSERA_COORDINATOR_URL: "", TESSERA_CRASH_AT: "" };
const MODEL = "pay-50m";
const VAULT_FUNDS = 1000_000000n;
let dir: string;
let url: string;
let port: string;
let anvil: Anvil;
let token: string;
let vault: string;
let usdcToken: string;
let payoutAddress: string;
let coordinatorArgs: string[];
let coordinator: ManagedProcess;
const nodes: Array<{ name: string; home: string; id: string; process: ManagedProcess }> = [];

async function run(name: string, args: string[]): Promise<string> {
  const proc = new ManagedProcess(name, process.execPath, [TESSERA_BIN, ...args], { env: ENV });
  const { code } = await proc.exited;
  if (code !== 0) throw new Error(`${name} failed:\n${proc.logText}`);
  return proc.logText;
}

function startCoordinator(crashAt: string): ManagedProcess {
  return new ManagedProcess("coordinator", process.execPath, [TESSERA_BIN, "coordinator", "start", ...coordinatorArgs], {
    env: { ...ENV, TESSERA_CRASH_AT: crashAt },
    logFile: join(dir, "coordinator.log"),
  });
}

async function api<T>(path: string): Promise<T> {
  const res = await fetch(`${url}${path}`, { headers: { authorization: `Bearer ${token}` } });
  if (!res.ok) throw new Error(`${path}: ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

async function payments(): Promise<{ held: number; available: number; in_flight: number; paid: number; lifetime: number; recent: Array<Record<string, unknown>> }> {
  return JSON.parse(await run("payments", ["payments", "--home", nodes[0]!.home, "--json"]));
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "tessera-payments-"));
  anvil = await startAnvil();
  const { connectSettlement } = await import("@tessera/coordinator/settlement");
  const payer = anvil.accounts[0]!;
  payoutAddress = anvil.accounts[1]!.address;
  const chain = await connectSettlement({ rpcUrl: anvil.rpcUrl, privateKey: payer.privateKey as `0x${string}` });
  usdcToken = await chain.deployTestUsdc();
  vault = await chain.deployVault({ token: usdcToken as `0x${string}`, payer: payer.address as `0x${string}` });
  await chain.mint(usdcToken as `0x${string}`, vault as `0x${string}`, VAULT_FUNDS);
  await waitUntil(async () => (await chain.tokenBalance(usdcToken as `0x${string}`, vault as `0x${string}`)) === VAULT_FUNDS, 10_000);
  const keyFile = join(dir, "payer.key");
  writeFileSync(keyFile, `${payer.privateKey}\n`, { mode: 0o600 });

  const modelPath = join(dir, `${MODEL}.gguf`);
  await makeTinyModel({ path: modelPath, seed: 5, preset: "50m", vocab: "spm" });
  const data = join(dir, "coordinator");
  token = /\b(tsk_\S+)/.exec(await run("keys", ["coordinator", "keys", "create", "--name", "client", "--data-dir", data]))![1]!;
  await run("credits", ["coordinator", "credits", "add", "--key", "client", "--amount", "5", "--source", "e2e test", "--data-dir", data]);
  const prices = join(dir, "prices.json");
  // 1 USDC per 1K prompt tokens, 10 USDC per 1K completion tokens: a few jobs earn more than Base's 1 USDC minimum.
  writeFileSync(prices, JSON.stringify({ default: { input_per_1k: 1_000_000, output_per_1k: 10_000_000 } }));
  port = String(await freePort());
  url = `http://127.0.0.1:${port}`;
  coordinatorArgs = [
    "--open", "--port", port, "--data-dir", data, "--prices", prices, "--hold", "30s", "--fee", "0.15",
    "--payout-schedule", "hourly", "--chain-rpc", `base=${anvil.rpcUrl}`, "--vault", `base=${vault}`,
    "--payer-key-file", keyFile, "--confirmations", "1", "--stall-timeout", "2", "--first-token-timeout", "10",
  ];
  coordinator = startCoordinator("settlement.sent");
  await coordinator.waitFor(/listening on/);

  for (const name of ["node1", "node2"]) {
    const home = join(dir, name);
    const text = await run(`${name}-init`, ["init", "--home", home, "--coordinator", url, "--backend", "embedded", "--model", modelPath]);
    const id = text.match(/\b([0-9a-f]{64})\b/)![1]!;
    nodes.push({ name, home, id, process: undefined as unknown as ManagedProcess });
  }
  // One operator for both machines: node2 gets node1's operator key before it first registers.
  const operatorKey = join(nodes[0]!.home, "operator.toml");
  expect(existsSync(operatorKey)).toBe(true);
  copyFileSync(operatorKey, join(nodes[1]!.home, "operator.toml"));
  for (const node of nodes) {
    node.process = new ManagedProcess(node.name, process.execPath, [TESSERA_BIN, "start", "--home", node.home], { env: ENV, logFile: join(dir, `${node.name}.log`) });
    await waitUntil(async () => ((await (await fetch(`${url}/api/v1/nodes/${node.id}/status`)).json()) as { status: string }).status === "online", 60_000);
  }
  await run("payout-set", ["payout", "set", "--chain", "base", "--address", payoutAddress, "--home", nodes[0]!.home]);
}, 300_000);

afterAll(async () => {
  await Promise.all(nodes.map((n) => n.process?.stop(5_000)));
  await coordinator?.stop(5_000);
  await anvil?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("contributors get paid", () => {
  it("charges, signs, holds, pays on chain once across a crash", async () => {
    const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: token, maxRetries: 0 });
    for (let i = 0; i < 3; i++) {
      const done = await client.chat.completions.create({ model: MODEL, messages: [{ role: "user", content: `Job ${i}: tell me about rivers.` }], max_tokens: 48, temperature: 0 });
      expect(done.choices[0]!.message.content!.length).toBeGreaterThan(0);
    }

    // The failover: the serving node freezes at chunk 8; the stall deadline moves the job to the other node.
    const stream = await client.chat.completions.create({ model: MODEL, messages: [{ role: "user", content: "Write about stones." }], max_tokens: 64, temperature: 0, stream: true });
    let jobId: string | undefined;
    let chunks = 0;
    let frozen: (typeof nodes)[number] | undefined;
    for await (const chunk of stream) {
      jobId ??= chunk.id.replace(/^chatcmpl-/, "");
      if (!chunk.choices[0]?.delta.content) continue;
      if (++chunks === 8) {
        const view = await api<{ node_id: string }>(`/api/v1/jobs/${jobId}`);
        frozen = nodes.find((n) => n.id === view.node_id)!;
        frozen.process.kill("SIGSTOP");
      }
    }
    expect(frozen).toBeDefined();
    frozen!.process.kill("SIGCONT");
    const failedOver = await api<{ status: string; node_id: string }>(`/api/v1/jobs/${jobId}`);
    expect(failedOver.status).toBe("completed");
    expect(failedOver.node_id).not.toBe(frozen!.id);

    // Every receipt is signed by its node (the frozen one once it thaws) and by the platform, and verifies offline.
    const platformKey = (await api<{ platform_key: string }>("/api/v1/platform-key")).platform_key;
    let receipts: Array<Record<string, unknown>> = [];
    await waitUntil(async () => {
      receipts = (await payments()).recent;
      return receipts.length >= 5 && receipts.every((r) => r.node_signature !== null);
    }, 60_000);
    const segments = receipts.filter((r) => r.job_id === jobId);
    expect(segments.map((r) => r.segment).sort()).toEqual([1, 2]);
    const full: Array<Record<string, unknown>> = [];
    for (const r of receipts) {
      // The client who paid reads each receipt in full (also by the seed's name, /cprs) and checks it offline.
      const receipt = await api<Record<string, unknown>>(`/api/v1/receipts/${String(r.receipt_id)}`);
      expect(await api<Record<string, unknown>>(`/api/v1/cprs/${String(r.receipt_id)}`)).toEqual(receipt);
      expect(verifyReceipt(receipt, { platformKey }).problems).toEqual([]);
      full.push(receipt);
    }
    const verified = await run("verify", ["receipt", "verify", String(receipts[0]!.receipt_id), "--url", url, "--api-key", token, "--json"]);
    expect(JSON.parse(verified)).toMatchObject({ valid: true });

    // The operator's earnings are its receipts less the fee; the client paid exactly the receipts' amounts.
    const earned = full.reduce((sum, r) => sum + Number(r.amount) - Number(r.fee) + Number(r.reward), 0);
    const charged = full.reduce((sum, r) => sum + Number(r.amount), 0);
    for (const r of full) expect(Number(r.fee)).toBe(Math.floor(Number(r.amount) * 0.15));
    const before = await payments();
    expect(before.lifetime).toBe(earned);
    const billing = await api<{ balance: { micro: number }; held: { micro: number } }>("/api/v1/billing");
    expect(billing.balance.micro).toBe(5_000_000 - charged);
    expect(earned).toBeGreaterThan(1_000_000);

    // After the hold the auto-payout sends the batch, and the coordinator dies before recording it (crash point).
    const { code, signal } = await coordinator.exited;
    expect({ code, signal }).toEqual({ code: null, signal: "SIGKILL" });
    coordinator = startCoordinator("");
    await coordinator.waitFor(/listening on/);
    // Receipts whose holds ended in different sweeps may be paid in different batches, and what is left under Base's
    // 1 USDC minimum waits; so the test waits until nothing is held or in flight and the wallet matches the ledger.
    const { connectSettlement } = await import("@tessera/coordinator/settlement");
    const chain = await connectSettlement({ rpcUrl: anvil.rpcUrl, privateKey: anvil.accounts[0]!.privateKey as `0x${string}` });
    const wallet = async () => chain.tokenBalance(usdcToken as `0x${string}`, payoutAddress as `0x${string}`);
    let after = await payments();
    await waitUntil(async () => {
      after = await payments();
      return after.held === 0 && after.in_flight === 0 && after.paid > 0 && (await wallet()) === BigInt(after.paid);
    }, 120_000).catch((err: unknown) => {
      throw new Error(`${String(err)}; earnings now ${JSON.stringify({ ...after, recent: undefined })}\n${coordinator.logText.slice(-4000)}`);
    });
    // Paid once: the wallet holds exactly the ledger's paid-out amount, the vault is down by exactly that, and
    // everything earned is either paid or still available (below the minimum).
    expect(await wallet()).toBe(BigInt(after.paid));
    expect(await chain.tokenBalance(usdcToken as `0x${string}`, vault as `0x${string}`)).toBe(VAULT_FUNDS - BigInt(after.paid));
    expect(after.paid + after.available).toBe(earned);
    expect(after.paid).toBeGreaterThanOrEqual(1_000_000);
    process.stdout.write(`payments e2e: ${receipts.length} receipts, charged ${charged} micro-USDC, operator earned ${earned}, paid ${after.paid} on anvil once\n`);
  }, 300_000);
});
