import { spawn } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createPublicClient, getAddress, http } from "viem";
import { TESSERA_BIN, startAnvil, type Anvil } from "@tessera/testkit";
import { connectSettlement } from "@tessera/coordinator/settlement";
import { parseUsdcAmount } from "../src/commands/coordinator-settlement.js";

/** `tessera coordinator settlement …` as an owner runs it: refusals of bad input, then real deployments on anvil. */
const ENV = { ...process.env, TESSERA_HOME: "", TESSERA_DB: "" };
let dir: string;
let anvil: Anvil;
let keyFile: string;
let looseKeyFile: string;
let secondKeyFile: string;
const BASE_USDC = "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913";

/** Runs the CLI without blocking this process (anvil's RPC must keep answering meanwhile). */
function tessera(...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return tesseraWith(ENV, ...args);
}
function tesseraWith(env: NodeJS.ProcessEnv, ...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [TESSERA_BIN, ...args], { env, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((resolve) => child.once("close", (code) => resolve({ code, stdout, stderr })));
}
const settlement = (...args: string[]) => tessera("coordinator", "settlement", ...args);

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "tessera-settlement-cli-"));
  anvil = await startAnvil({ accounts: 4 });
  keyFile = join(dir, "owner.key");
  writeFileSync(keyFile, `${anvil.accounts[0]!.privateKey}\n`, { mode: 0o600 });
  secondKeyFile = join(dir, "second-owner.key");
  writeFileSync(secondKeyFile, `${anvil.accounts[3]!.privateKey}\n`, { mode: 0o600 });
  looseKeyFile = join(dir, "loose.key");
  writeFileSync(looseKeyFile, `${anvil.accounts[0]!.privateKey}\n`);
  chmodSync(looseKeyFile, 0o644);
});
afterAll(async () => {
  await anvil?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("tessera coordinator settlement", () => {
  it("refuses bad input with a stable code before deploying anything", async () => {
    const rpc = anvil.rpcUrl;
    const runs = await Promise.all([
      settlement("deploy", "--rpc", "not a url", "--token", BASE_USDC, "--key-file", keyFile),
      settlement("deploy", "--rpc", rpc, "--token", "0x1234", "--key-file", keyFile),
      settlement("deploy", "--rpc", rpc, "--token", BASE_USDC, "--key-file", looseKeyFile),
      settlement("deploy", "--rpc", "http://127.0.0.1:9", "--token", BASE_USDC, "--key-file", keyFile),
      settlement("test-token", "--rpc", rpc, "--key-file", keyFile, "--mint-to", "9WzDXwBbmkg8ZTbNMqUxvQRAyrZzDsGYdLVL9zYtAWWM", "--amount", "5"),
    ]);
    const seen = runs.map((r) => ({ code: r.code, stdout: r.stdout, stderr: r.stderr.trim() }));
    expect(seen).toEqual([
      { code: 2, stdout: "", stderr: expect.stringMatching(/^error \[bad_request\]: "not a url" is not an RPC URL/) },
      { code: 2, stdout: "", stderr: expect.stringMatching(/^error \[bad_request\]: "0x1234" is not an EVM token address/) },
      { code: 2, stdout: "", stderr: `error [bad_request]: payer key file ${looseKeyFile} has mode 644, which lets others read it: run \`chmod 600 ${looseKeyFile}\`` },
      { code: 3, stdout: "", stderr: expect.stringMatching(/^error \[unreachable\]: connect to the chain: the RPC at http:\/\/127\.0\.0\.1:9\/ did not answer/) },
      { code: 2, stdout: "", stderr: "error [bad_request]: Solana payouts are not supported yet; give an EVM (0x…) address for base, ethereum, polygon or arbitrum" },
    ]);
    for (const run of runs) expect(run.stderr).not.toContain(anvil.accounts[0]!.privateKey.slice(2));
    // Nothing was sent: the owner's account has made no transaction.
    expect(await createPublicClient({ transport: http(anvil.rpcUrl) }).getTransactionCount({ address: anvil.accounts[0]!.address })).toBe(0);
  });

  it("reads --amount as USDC with at most 6 decimals, never through a float", () => {
    expect(parseUsdcAmount("12.5", "--amount")).toBe(12_500_000n);
    expect(parseUsdcAmount("0.000001", "--amount")).toBe(1n);
    expect(parseUsdcAmount("1000", "--amount")).toBe(1_000_000_000n);
    for (const bad of ["1.0000001", "-1", "1e6", "", "0", "0.0", "abc"]) {
      expect(() => parseUsdcAmount(bad, "--amount"), bad).toThrow(expect.objectContaining({ code: "bad_request" }));
    }
  });

  it("deploys a test token with a mint, then vaults over it: with --payer, and with the key's own account as payer", async () => {
    const operator = getAddress(anvil.accounts[2]!.address);
    const tokenRun = await settlement("test-token", "--rpc", anvil.rpcUrl, "--key-file", keyFile, "--mint-to", operator, "--amount", "12.5", "--json");
    expect(tokenRun.stderr).toBe("");
    expect(tokenRun.code).toBe(0);
    const token = JSON.parse(tokenRun.stdout) as { token: `0x${string}` };
    expect(token).toEqual({ token: expect.stringMatching(/^0x[0-9a-fA-F]{40}$/), chain_id: 31337, minter: getAddress(anvil.accounts[0]!.address), minted: { to: operator, micro_usdc: "12500000" } });

    // Two owners deploy at once (one key each, so their nonces cannot collide).
    const payer = getAddress(anvil.accounts[1]!.address);
    const secondOwner = getAddress(anvil.accounts[3]!.address);
    const [withPayer, withoutPayer] = await Promise.all([
      settlement("deploy", "--rpc", anvil.rpcUrl, "--token", token.token.toLowerCase(), "--key-file", keyFile, "--payer", payer),
      settlement("deploy", "--rpc", anvil.rpcUrl, "--token", token.token, "--key-file", secondKeyFile, "--json"),
    ]);
    expect(withPayer.stderr).toBe("");
    expect(withPayer.code).toBe(0);
    const vaultAddress = /^payout vault (0x[0-9a-fA-F]{40})$/m.exec(withPayer.stdout)?.[1] as `0x${string}` | undefined;
    expect(vaultAddress, withPayer.stdout).toBeDefined();
    expect(withPayer.stdout).toContain(`payer ${payer}`);
    expect(withoutPayer.stderr).toBe("");
    const second = JSON.parse(withoutPayer.stdout) as { vault: `0x${string}` };
    expect(second).toEqual({ vault: expect.stringMatching(/^0x[0-9a-fA-F]{40}$/), chain_id: 31337, token: token.token, payer: secondOwner, owner: secondOwner });

    const client = await connectSettlement({ rpcUrl: anvil.rpcUrl, privateKey: anvil.accounts[1]!.privateKey });
    const vault = client.vault(vaultAddress!);
    expect(await vault.tokenAddress()).toBe(token.token);
    expect(await vault.payer()).toBe(payer);
    expect(await vault.tokenBalance(operator)).toBe(12_500_000n);
    expect(await client.vault(second.vault).payer()).toBe(secondOwner);
  });

  it("takes the payer key from TESSERA_PAYER_KEY_FILE when --key-file is not given, exactly as the docs print it", async () => {
    const missing = await tesseraWith({ ...ENV, TESSERA_PAYER_KEY_FILE: "" }, "coordinator", "settlement", "deploy", "--rpc", anvil.rpcUrl, "--token", BASE_USDC);
    expect({ code: missing.code, stderr: missing.stderr.trim() }).toEqual({ code: 2, stderr: "error [bad_request]: give --key-file FILE, or set TESSERA_PAYER_KEY_FILE (the coordinator's --payer-key-file)" });
    const token = JSON.parse((await settlement("test-token", "--rpc", anvil.rpcUrl, "--key-file", keyFile, "--json")).stdout) as { token: string };
    const run = await tesseraWith({ ...ENV, TESSERA_PAYER_KEY_FILE: keyFile }, "coordinator", "settlement", "deploy", "--rpc", anvil.rpcUrl, "--token", token.token);
    expect(run.stderr).toBe("");
    const vault = /^payout vault (0x[0-9a-fA-F]{40})$/m.exec(run.stdout)![1]!;
    // Funding it, as docs/settlement.md does: mint on the token deployed before.
    const alone = await settlement("test-token", "--rpc", anvil.rpcUrl, "--key-file", keyFile, "--token", token.token);
    expect(alone.stderr.trim()).toBe("error [bad_request]: --token mints on a test token deployed before: give --mint-to and --amount too");
    const funded = await settlement("test-token", "--rpc", anvil.rpcUrl, "--key-file", keyFile, "--token", token.token, "--mint-to", vault, "--amount", "1000", "--json");
    expect(JSON.parse(funded.stdout)).toMatchObject({ token: token.token, minted: { micro_usdc: "1000000000" } });
    const client = await connectSettlement({ rpcUrl: anvil.rpcUrl, privateKey: anvil.accounts[1]!.privateKey });
    expect(await client.vault(vault as `0x${string}`).vaultBalance()).toBe(1_000_000_000n);
  });
});
