import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { ManagedProcess } from "./cluster/managed-process.js";
import { freePort } from "./cluster/free-port.js";

/** A dev account anvil funds with 10 000 ETH at genesis. Its key is public: never use it on a real network. */
export interface AnvilAccount {
  address: `0x${string}`;
  privateKey: `0x${string}`;
}

export interface Anvil {
  rpcUrl: string;
  chainId: number;
  /** Anvil's default dev accounts (from the well-known "test … junk" mnemonic), in anvil's order. */
  accounts: AnvilAccount[];
  /** Anvil's output so far, for a failing test's message. */
  readonly logText: string;
  stop(): Promise<void>;
}

export interface AnvilOptions {
  /** Defaults to anvil's own 31337. */
  chainId?: number;
  /** How many dev accounts to fund (default 10). */
  accounts?: number;
  /** Seconds between blocks; by default anvil mines one block per transaction, at once. */
  blockTimeS?: number;
}

const ARCH: Partial<Record<string, string>> = { x64: "amd64", arm64: "arm64" };

/**
 * The anvil binary that `@foundry-rs/anvil` installs through its optional platform package
 * (`@foundry-rs/anvil-linux-amd64` and friends). Spawned directly, not through the package's node wrapper, so that
 * stopping it stops the chain and nothing is left behind.
 */
export function anvilBinary(): string {
  const platformPackage = `@foundry-rs/anvil-${process.platform}-${ARCH[process.arch] ?? process.arch}`;
  try {
    const manifest = createRequire(import.meta.url).resolve(`${platformPackage}/package.json`);
    return join(dirname(manifest), "bin", process.platform === "win32" ? "anvil.exe" : "anvil");
  } catch (cause) {
    throw new Error(`no anvil binary for ${process.platform}/${process.arch}: ${platformPackage} is not installed (it comes with the root devDependency @foundry-rs/anvil)`, { cause });
  }
}

async function rpcAnswers(rpcUrl: string): Promise<number | undefined> {
  try {
    const response = await fetch(rpcUrl, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "eth_chainId", params: [] }),
      signal: AbortSignal.timeout(1_000),
    });
    const body = (await response.json()) as { result?: string };
    return body.result ? Number(BigInt(body.result)) : undefined;
  } catch {
    return undefined;
  }
}

async function startOnce(options: AnvilOptions, timeoutMs: number): Promise<Anvil> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "tessera-anvil-"));
  const configFile = join(dir, "anvil.json");
  const args = ["--host", "127.0.0.1", "--port", String(port), "--accounts", String(options.accounts ?? 10), "--config-out", configFile];
  if (options.chainId !== undefined) args.push("--chain-id", String(options.chainId));
  if (options.blockTimeS !== undefined) args.push("--block-time", String(options.blockTimeS));
  const child = new ManagedProcess("anvil", anvilBinary(), args);
  const rpcUrl = `http://127.0.0.1:${port}`;
  const stop = async () => {
    await child.stop(5_000);
    rmSync(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + timeoutMs;
  let chainId: number | undefined;
  while ((chainId = await rpcAnswers(rpcUrl)) === undefined) {
    if (!child.running || Date.now() > deadline) {
      const log = child.logText.slice(-2000);
      await stop();
      throw new Error(`anvil did not answer on ${rpcUrl} within ${timeoutMs} ms${child.running ? "" : " (it exited)"}; output:\n${log}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const config = JSON.parse(readFileSync(configFile, "utf8")) as { available_accounts: `0x${string}`[]; private_keys: `0x${string}`[] };
  const accounts = config.available_accounts.map((address, i) => ({ address, privateKey: config.private_keys[i]! }));
  return {
    rpcUrl,
    chainId,
    accounts,
    get logText() {
      return child.logText;
    },
    stop,
  };
}

/**
 * Starts a real local EVM chain (anvil) on a free port and resolves once its JSON-RPC answers. Anvil has no
 * `--port 0`, so a port that was free a moment ago is picked, and the start is retried on another if it was taken.
 */
export async function startAnvil(options: AnvilOptions = {}, timeoutMs = 20_000): Promise<Anvil> {
  let last: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      return await startOnce(options, timeoutMs);
    } catch (err) {
      last = err;
    }
  }
  throw last;
}
