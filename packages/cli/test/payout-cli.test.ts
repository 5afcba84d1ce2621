import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RECEIPT_VERSION } from "@tessera/protocol";
import { openStore, type Store } from "@tessera/coordinator";
import { ManagedProcess, TESSERA_BIN, freePort, startFakeOpenAICompatible } from "@tessera/testkit";

/**
 * `tessera payout …` and `tessera payments` as an operator runs them, against a real coordinator process that settles
 * on base and ethereum. Earnings are seeded straight into the coordinator's SQLite file, as job billing would post them.
 */
const ENV = { ...process.env, TESSERA_HOME: "", TESSERA_BACKEND: "", TESSERA_COORDINATOR_URL: "", TESSERA_DB: "", TESSERA_ADMISSION: "", TESSERA_OPEN: "" };
const VAULT = "0x5FbDB2315678afecb367f032d93F642f64180aa3";
const ADDRESS = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
let dir: string;
let url: string;
let coordinator: ManagedProcess;
let backend: Awaited<ReturnType<typeof startFakeOpenAICompatible>>;

function tessera(...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [TESSERA_BIN, ...args], { env: ENV, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((resolve) => child.once("close", (code) => resolve({ code, stdout, stderr })));
}

async function ok(args: string[]): Promise<string> {
  const run = await tessera(...args);
  expect(run.stderr).toBe("");
  expect(run.code).toBe(0);
  return run.stdout;
}

async function refused(args: string[], code: string, message: RegExp): Promise<void> {
  const run = await tessera(...args);
  expect(run.code).not.toBe(0);
  expect(run.stderr).toMatch(new RegExp(`error \\[${code}\\]: .*${message.source}`));
}

async function withStore<T>(use: (store: Store) => Promise<T>): Promise<T> {
  const store = await openStore({ sqlitePath: join(dir, "coordinator", "coordinator.db"), keyDir: join(dir, "coordinator") });
  try {
    return await use(store);
  } finally {
    await store.close();
  }
}

async function earn(operatorId: string, micro: number): Promise<void> {
  const jobId = `job-${randomUUID()}`;
  await withStore((store) =>
    store.settleJob(
      { id: randomUUID(), idempotencyKey: `seed:${jobId}`, kind: "test.seed", jobId, createdAt: new Date(), entries: [{ account: "world", amount: -micro }, { account: `operator:${operatorId}:available`, amount: micro }] },
      [
        {
          holdUntil: new Date(),
          receipt: {
            v: RECEIPT_VERSION,
            receipt_id: randomUUID(),
            job_id: jobId,
            segment: 1,
            node_id: operatorId,
            operator_id: operatorId,
            client_key_id: "open",
            model: "tiny-chat",
            model_sha256: null,
            input_tokens: 100,
            output_tokens: 50,
            price: { input_per_1k: 0, output_per_1k: 0 },
            amount: micro,
            fee: 0,
            reward: 0,
            output_sha256: "0".repeat(64),
            result_commitment: null,
            completed_at: new Date().toISOString(),
            platform_key: "f".repeat(64),
            status: "available",
            platform_signature: "1".repeat(128),
            node_signature: null,
          },
        },
      ],
    ),
  );
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "tessera-payout-"));
  backend = await startFakeOpenAICompatible({ flavour: "vllm", models: ["tiny-chat"] });
  const port = await freePort();
  url = `http://127.0.0.1:${port}`;
  coordinator = new ManagedProcess(
    "coordinator",
    process.execPath,
    [TESSERA_BIN, "coordinator", "start", "--port", String(port), "--data-dir", join(dir, "coordinator"), "--admission", "open"],
    // Settings by environment: the coordinator settles on base and ethereum (an RPC that never answers, and a payer key
    // file never read: nothing is paid here).
    { env: { ...ENV, TESSERA_PAYOUT_SCHEDULE: "off", TESSERA_CHAIN_RPC: "base=http://127.0.0.1:9,ethereum=http://127.0.0.1:9", TESSERA_VAULTS: `base=${VAULT},ethereum=${VAULT}`, TESSERA_PAYER_KEY_FILE: join(dir, "payer.key") } },
  );
  await coordinator.waitFor(/listening on/);
});
afterAll(async () => {
  await coordinator?.stop();
  await backend?.http.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("tessera payout and payments, on a real coordinator", () => {
  it("sets and lists addresses, refuses a request below the minimum, requests a payout and shows earnings", async () => {
    const home = join(dir, "alice");
    await ok(["init", "--home", home, "--coordinator", url, "--backend", "vllm", "--vllm-host", backend.url]);
    await ok(["register", "--home", home]);
    const operatorId = (JSON.parse(await ok(["operator", "init", "--home", home, "--json"])) as { operator: string }).operator;

    await refused(["payout", "request", "--home", home], "bad_request", /no payout address is set: set one first with `tessera payout set --chain base --address 0x…`/);
    expect(await ok(["payout", "list", "--home", home])).toMatch(/no payout address/);
    expect(await ok(["payout", "set", "--home", home, "--address", ADDRESS.toLowerCase()])).toMatch(`payouts on base go to ${ADDRESS} (now your default payout address; signed with the operator key)`);
    expect(JSON.parse(await ok(["payout", "list", "--home", home, "--json"]))).toEqual({ addresses: [expect.objectContaining({ chain: "base", address: ADDRESS, default: true })] });

    await earn(operatorId, 400_000);
    await refused(["payout", "request", "--home", home], "bad_request", /available earnings are 0.4 USDC; a payout on base needs at least 1 USDC, 0.6 USDC more/);
    await earn(operatorId, 2_100_000);
    expect(await ok(["payout", "request", "--home", home])).toMatch(/payout of 2.5 USDC requested on base to 0x70997970C51812dc3A010C7d01b50e0d17dc79C8/);
    await refused(["payout", "request", "--home", home, "--chain", "ethereum"], "bad_request", /no payout address on ethereum/);

    const text = await ok(["payments", "--home", home]);
    expect(text).toMatch(/available +2.5 USDC/);
    expect(text).toMatch(/lifetime +2.5 USDC/);
    expect(text).toMatch(/tiny-chat +100\/50 +2.1 USDC +available/);
    const json = JSON.parse(await ok(["payments", "--home", home, "--json"])) as { available: number; held: number; recent: unknown[]; currency: string };
    expect(json).toMatchObject({ available: 2_500_000, held: 0, currency: "USDC" });
    expect(json.recent).toHaveLength(2);
  });

  it("refuses bad input with a clear error and a non-zero exit", async () => {
    const home = join(dir, "bob");
    await ok(["init", "--home", home, "--coordinator", url, "--backend", "vllm", "--vllm-host", backend.url]);
    // Not registered yet: its operator is unknown to the coordinator.
    await refused(["payout", "set", "--home", home, "--address", ADDRESS], "forbidden", /is not an operator here/);
    await refused(["payments", "--home", home], "forbidden", /is not an operator here/);
    await ok(["register", "--home", home]);
    await refused(["payout", "set", "--home", home, "--chain", "solana", "--address", "7EcDhSYGxXyscszYEp35KHN8vvw3svAuLKTzXwCFLtV"], "bad_request", /Solana payouts are not supported yet/);
    await refused(["payout", "set", "--home", home, "--address", "7EcDhSYGxXyscszYEp35KHN8vvw3svAuLKTzXwCFLtV"], "bad_request", /Solana payouts are not supported yet/);
    await refused(["payout", "set", "--home", home, "--chain", "dogecoin", "--address", ADDRESS], "bad_request", /"dogecoin" is not a payout chain/);
    await refused(["payout", "set", "--home", home, "--chain", "no chain!", "--address", ADDRESS], "bad_request", /--chain must be a chain name/);
    await refused(["payout", "set", "--home", home, "--address", "0x1234"], "bad_request", /not an EVM payout address/);
    await refused(["payout", "request", "--home", home, "--chain", "solana"], "bad_request", /Solana payouts are not supported yet/);
    const missing = await tessera("payout", "set", "--home", home);
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toMatch(/required option '--address <0x…>' not specified/);
    await refused(["payments", "--home", join(dir, "nobody")], "not_found", /no operator or node key/);
    await refused(["payments", "--home", home, "--coordinator", "http://127.0.0.1:9"], "node_disconnected", /unreachable/);
    expect(await ok(["payout", "list", "--home", home])).toMatch(/no payout address/);
  });
});
