import type { Command } from "commander";
import { TesseraError } from "@tessera/protocol";
import { printJson } from "../output.js";

interface ChainFlags {
  rpc: string;
  keyFile?: string;
  json?: boolean;
}

/** "12.5" USDC → 12_500_000 micro-USDC; at most 6 decimals, never through a float. */
export function parseUsdcAmount(text: string, flag: string): bigint {
  const match = /^(\d{1,12})(?:\.(\d{1,6}))?$/.exec(text.trim());
  if (!match) throw new TesseraError("bad_request", `${flag} must be an amount of USDC like 100 or 12.5 (at most 6 decimals), got "${text}"`);
  const units = BigInt(match[1]!) * 1_000_000n + BigInt((match[2] ?? "").padEnd(6, "0"));
  if (units === 0n) throw new TesseraError("bad_request", `${flag} must be more than 0`);
  return units;
}

const formatUsdc = (micro: bigint) => `${micro / 1_000_000n}.${(micro % 1_000_000n).toString().padStart(6, "0")}`.replace(/\.?0+$/, "");

/** Checks every flag (and reads the key file) before anything touches the network; then connects. */
async function connect(flags: ChainFlags) {
  const settlement = await import("@tessera/coordinator/settlement");
  const rpcUrl = settlement.parseRpcUrl(flags.rpc);
  // Default: the payer key the coordinator is configured with (TESSERA_PAYER_KEY_FILE), read where settings are read.
  const { loadCoordinatorConfig } = await import("@tessera/coordinator/config");
  const keyFile = flags.keyFile ?? loadCoordinatorConfig({}).payerKeyFile;
  if (keyFile === undefined) throw new TesseraError("bad_request", "give --key-file FILE, or set TESSERA_PAYER_KEY_FILE (the coordinator's --payer-key-file)");
  const privateKey = await settlement.readPayerKey(keyFile);
  return { settlement, client: await settlement.connectSettlement({ rpcUrl, privateKey }) };
}

/**
 * `tessera coordinator settlement deploy|test-token`: put the payout vault (and, on a local or test network, a test
 * USDC) on-chain. The key file's account pays the gas and owns what it deploys.
 */
export function addSettlementCommands(coordinator: Command): void {
  const settlement = coordinator.command("settlement").description("on-chain settlement of operator payouts (USDC on an EVM chain)");

  settlement
    .command("deploy")
    .description("deploy a PayoutVault for a USDC token; the key file's account becomes its owner")
    .requiredOption("--rpc <url>", "JSON-RPC URL of the chain (http or https)")
    .requiredOption("--token <address>", "the USDC (ERC-20) contract the vault pays in")
    .option("--key-file <file>", "file holding the deploying (owner) account's private key: 0x + 64 hex, mode 0600 (default: TESSERA_PAYER_KEY_FILE)")
    .option("--payer <address>", "the address allowed to settle batches (default: the key file's own address)")
    .option("--json", "print JSON")
    .action(async (flags: ChainFlags & { token: string; payer?: string }) => {
      const { parseEvmAddress } = await import("@tessera/coordinator/settlement");
      const token = parseEvmAddress(flags.token, "token address");
      const payerFlag = flags.payer === undefined ? undefined : parseEvmAddress(flags.payer, "payer address");
      const { client } = await connect(flags);
      const payer = payerFlag ?? client.account;
      const vault = await client.deployVault({ token, payer });
      if (flags.json) return printJson({ vault, chain_id: client.chainId, token, payer, owner: client.account });
      process.stdout.write(
        [
          `payout vault ${vault}`,
          `  chain ${client.chainId}, token ${token}`,
          `  owner ${client.account} (may change the payer and withdraw)`,
          `  payer ${payer} (may settle batches, paying out at most what the vault holds)`,
          "Fund it by sending USDC to the vault address; fund it with what is due per period, not more.",
          "",
        ].join("\n"),
      );
    });

  settlement
    .command("test-token")
    .description("deploy a test USDC (6 decimals) on a local or test network; the key file's account mints")
    .requiredOption("--rpc <url>", "JSON-RPC URL of a local or test chain")
    .option("--key-file <file>", "file holding the deploying account's private key: 0x + 64 hex, mode 0600 (default: TESSERA_PAYER_KEY_FILE)")
    .option("--mint-to <address>", "mint test USDC to this address (needs --amount), e.g. the vault, to fund it")
    .option("--amount <usdc>", "how much test USDC to mint, e.g. 1000 or 12.5")
    .option("--token <address>", "mint on this test token, deployed before, instead of deploying another")
    .option("--json", "print JSON")
    .action(async (flags: ChainFlags & { mintTo?: string; amount?: string; token?: string }) => {
      const { PAYOUT_CHAINS, parseEvmAddress } = await import("@tessera/coordinator/settlement");
      if ((flags.mintTo === undefined) !== (flags.amount === undefined)) throw new TesseraError("bad_request", "--mint-to and --amount go together: give both or neither");
      const mintTo = flags.mintTo === undefined ? undefined : parseEvmAddress(flags.mintTo, "--mint-to address");
      const amount = flags.amount === undefined ? undefined : parseUsdcAmount(flags.amount, "--amount");
      const existing = flags.token === undefined ? undefined : parseEvmAddress(flags.token, "--token address");
      if (existing !== undefined && mintTo === undefined) throw new TesseraError("bad_request", "--token mints on a test token deployed before: give --mint-to and --amount too");
      const { client } = await connect(flags);
      const mainnet = Object.entries(PAYOUT_CHAINS).find(([, chain]) => chain.chainId === client.chainId);
      if (mainnet) throw new TesseraError("bad_request", `chain ${client.chainId} is ${mainnet[0]} mainnet: a test token is for local and test networks only`);
      const token = existing ?? (await client.deployTestUsdc());
      if (mintTo !== undefined && amount !== undefined) await client.mint(token, mintTo, amount);
      const minted = mintTo !== undefined && amount !== undefined ? { to: mintTo, micro_usdc: amount.toString() } : null;
      if (flags.json) return printJson({ token, chain_id: client.chainId, minter: client.account, minted });
      process.stdout.write(
        `test token ${token} (tUSDC, 6 decimals) on chain ${client.chainId}, minted by ${client.account}` +
          `${minted ? `\n  minted ${formatUsdc(amount!)} tUSDC to ${mintTo}` : ""}\n`,
      );
    });
}
