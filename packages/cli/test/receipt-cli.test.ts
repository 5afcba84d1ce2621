import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RECEIPT_VERSION, type Receipt, type ReceiptBody, type Signer, encodeNpub, generateKeyPair, secretKeySigner, signReceipt } from "@tessera/protocol";
import { type RunningCoordinator, generateApiToken, hashApiToken, loadCoordinatorConfig, loadOrCreatePlatformKey, startCoordinator } from "@tessera/coordinator";
import { TESSERA_BIN } from "@tessera/testkit";

/** `tessera receipt verify` and `tessera coordinator keys platform`, run as a user runs them, against files and an in-process coordinator. */
const ENV: NodeJS.ProcessEnv = { ...process.env };
for (const name of ["TESSERA_URL", "TESSERA_API_KEY", "TESSERA_DATA_DIR", "TESSERA_DB", "TESSERA_HOME"]) delete ENV[name];

let dir: string;
let coordinator: RunningCoordinator;
let platform: Signer;
let token: string;
const node = secretKeySigner(generateKeyPair().secretKeyHex);

function tessera(...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [TESSERA_BIN, ...args], { env: ENV, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((resolve) => child.once("close", (code) => resolve({ code, stdout, stderr })));
}

function body(clientKeyId = "key:cli"): ReceiptBody {
  return {
    v: RECEIPT_VERSION,
    receipt_id: randomUUID(),
    job_id: `job-${randomUUID()}`,
    segment: 1,
    node_id: node.publicKeyHex,
    operator_id: node.publicKeyHex,
    client_key_id: clientKeyId,
    model: "tiny",
    model_sha256: null,
    input_tokens: 7,
    output_tokens: 2,
    price: { input_per_1k: 100, output_per_1k: 400 },
    amount: 2,
    fee: 1,
    reward: 0,
    output_sha256: "ee".repeat(32),
    result_commitment: null,
    completed_at: "2026-12-01T00:00:00.000Z",
    platform_key: platform.publicKeyHex,
  };
}

function signed(b: ReceiptBody, withNode = true): Receipt {
  return { ...b, status: "held", platform_signature: signReceipt(platform, b, "platform"), node_signature: withNode ? signReceipt(node, b, "node") : null };
}

function file(name: string, content: unknown): string {
  const path = join(dir, name);
  writeFileSync(path, typeof content === "string" ? content : JSON.stringify(content));
  return path;
}

async function stored(receipt: Receipt): Promise<void> {
  const ok = await coordinator.ctx.store.settleJob(
    { id: randomUUID(), idempotencyKey: `cli:${receipt.receipt_id}`, kind: "test", jobId: receipt.job_id, createdAt: new Date(), entries: [] },
    [{ receipt, holdUntil: new Date(Date.now() + 86_400_000) }],
  );
  expect(ok).toBe(true);
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "tessera-receipt-cli-"));
  const dataDir = join(dir, "coordinator");
  coordinator = await startCoordinator(loadCoordinatorConfig({ dataDir, port: "0", admission: "open", logLevel: "silent" }, {}));
  platform = loadOrCreatePlatformKey(dataDir);
  token = generateApiToken();
  await coordinator.ctx.store.createApiKey({ id: "cli", name: "cli", tokenSha256: hashApiToken(token), rateLimitPerMinute: 600, createdAt: new Date() });
});

afterAll(async () => {
  await coordinator?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("tessera receipt verify FILE", () => {
  it("a receipt signed by both is valid (exit 0), in words and as JSON, pinned by hex or npub", async () => {
    const path = file("good.json", signed(body()));
    const run = await tessera("receipt", "verify", path);
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/: VALID\n/);
    expect(run.stdout).toMatch(/platform +valid/);
    expect(run.stdout).toMatch(/node +valid/);
    const json = await tessera("receipt", "verify", path, "--json", "--platform-key", encodeNpub(platform.publicKeyHex));
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout)).toMatchObject({ valid: true, platform: "valid", node: "valid", platform_key_pinned: "flag", problems: [] });
    expect((await tessera("receipt", "verify", path, "--platform-key", platform.publicKeyHex)).code).toBe(0);
  });

  it("a tampered receipt, one the node has not signed, or one by another platform key is not valid (exit 1) and says why", async () => {
    const tampered = await tessera("receipt", "verify", file("tampered.json", { ...signed(body()), amount: 3 }), "--json");
    expect(tampered.code).toBe(1);
    expect(JSON.parse(tampered.stdout)).toMatchObject({ valid: false, platform: "invalid", node: "invalid" });
    const unsigned = await tessera("receipt", "verify", file("unsigned.json", signed(body(), false)));
    expect(unsigned.code).toBe(1);
    expect(unsigned.stdout).toMatch(/NOT VALID/);
    expect(unsigned.stdout).toMatch(/node +missing/);
    expect(unsigned.stdout).toMatch(/problem: the node has not signed the receipt yet/);
    const other = generateKeyPair().publicKeyHex;
    const wrongKey = await tessera("receipt", "verify", file("good2.json", signed(body())), "--platform-key", other);
    expect(wrongKey.code).toBe(1);
    expect(wrongKey.stdout).toContain(`not the expected ${other}`);
  });

  it.each<[string, () => string[], string, number]>([
    ["a missing file", () => [join(dir, "nope.json")], "not_found", 1],
    ["a name that is neither a file nor a receipt id", () => ["receipt-123"], "not_found", 1],
    ["a file that is not JSON", () => [file("text.json", "this is not json {")], "bad_request", 2],
    ["JSON that is not a receipt", () => [file("empty.json", {})], "bad_request", 2],
    ["a receipt with a field too many", () => [file("extra.json", { ...signed(body()), extra: 1 })], "bad_request", 2],
    ["a directory", () => [dir], "bad_request", 2],
    ["a malformed --platform-key", () => [file("good3.json", signed(body())), "--platform-key", "npub1nope"], "bad_request", 2],
    ["a bad --url for an id", () => [randomUUID(), "--url", "ftp://x"], "bad_request", 2],
  ])("refuses %s with a stable code", async (_name, args, code, exit) => {
    const run = await tessera("receipt", "verify", ...args());
    expect(run.stderr).toMatch(new RegExp(`^error \\[${code}\\]: `));
    expect(run.code).toBe(exit);
    expect(run.stdout).toBe("");
  });
});

describe("tessera receipt verify ID", () => {
  it("fetches the receipt with the API key and checks it against the coordinator's platform key", async () => {
    const receipt = signed(body());
    await stored(receipt);
    const run = await tessera("receipt", "verify", receipt.receipt_id, "--coordinator", coordinator.url, "--api-key", token, "--json");
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({ receipt_id: receipt.receipt_id, valid: true, platform_key_pinned: "coordinator" });
  });

  it("an unknown id, another client's receipt and a missing key are refused with their codes", async () => {
    const foreign = signed(body("key:someone-else"));
    await stored(foreign);
    for (const id of [randomUUID(), foreign.receipt_id]) {
      const run = await tessera("receipt", "verify", id, "--url", coordinator.url, "--api-key", token);
      expect(run.stderr).toMatch(/^error \[not_found\]: no receipt /);
      expect(run.code).toBe(1);
    }
    const noKey = await tessera("receipt", "verify", foreign.receipt_id, "--url", coordinator.url);
    expect(noKey.stderr).toMatch(/^error \[unauthorized\]: /);
    expect(noKey.code).not.toBe(0);
    const down = await tessera("receipt", "verify", randomUUID(), "--url", "http://127.0.0.1:1", "--api-key", token);
    expect(down.stderr).toMatch(/^error \[unreachable\]: /);
  });
});

describe("tessera coordinator keys platform", () => {
  it("prints the platform key in hex and npub, and says when there is none", async () => {
    const dataDir = join(dir, "coordinator");
    const text = await tessera("coordinator", "keys", "platform", "--data-dir", dataDir);
    expect(text.code).toBe(0);
    expect(text.stdout).toContain(platform.publicKeyHex);
    expect(text.stdout).toContain(encodeNpub(platform.publicKeyHex));
    const json = await tessera("coordinator", "keys", "platform", "--data-dir", dataDir, "--json");
    expect(JSON.parse(json.stdout)).toMatchObject({ platform_key: platform.publicKeyHex, npub: encodeNpub(platform.publicKeyHex) });
    const empty = join(dir, "empty");
    mkdirSync(empty);
    const none = await tessera("coordinator", "keys", "platform", "--data-dir", empty);
    expect(none.stderr).toMatch(/^error \[not_found\]: no platform key at /);
    expect(none.code).toBe(1);
  });
});
