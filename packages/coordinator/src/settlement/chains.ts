import { TesseraError } from "@tessera/protocol";
import { getAddress, isAddress, type Address } from "viem";

/**
 * The chains operators can be paid on, in USDC (6 decimals: amounts are micro-USDC). The USDC addresses are Circle's
 * native USDC on each mainnet (not bridged USDC.e). Minimum payouts keep a payout worth more than its gas.
 */
export const PAYOUT_CHAINS = {
  base: { chainId: 8453, usdc: "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913", minPayoutMicroUsdc: 1_000_000n },
  ethereum: { chainId: 1, usdc: "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48", minPayoutMicroUsdc: 10_000_000n },
  polygon: { chainId: 137, usdc: "0x3c499c542cEF5E3811e1192ce70d8cC03d5c3359", minPayoutMicroUsdc: 1_000_000n },
  arbitrum: { chainId: 42161, usdc: "0xaf88d065e77c8cC2239327C5EDb3A432268e5831", minPayoutMicroUsdc: 1_000_000n },
} as const satisfies Record<string, { chainId: number; usdc: Address; minPayoutMicroUsdc: bigint }>;

export type PayoutChainName = keyof typeof PAYOUT_CHAINS;
export type PayoutChain = (typeof PAYOUT_CHAINS)[PayoutChainName] & { name: PayoutChainName };

export const DEFAULT_PAYOUT_CHAIN: PayoutChainName = "base";
export const PAYOUT_CHAIN_NAMES = Object.keys(PAYOUT_CHAINS) as PayoutChainName[];

export const SOLANA_NOT_SUPPORTED = "Solana payouts are not supported yet; give an EVM (0x…) address for base, ethereum, polygon or arbitrum";

export function isPayoutChain(name: string): name is PayoutChainName {
  return Object.hasOwn(PAYOUT_CHAINS, name);
}

/** The chain called `name`; throws bad_request naming the supported ones otherwise. */
export function parsePayoutChain(name: string): PayoutChain {
  if (!isPayoutChain(name)) {
    throw new TesseraError("bad_request", `"${name}" is not a payout chain: give one of ${PAYOUT_CHAIN_NAMES.join(", ")} (default ${DEFAULT_PAYOUT_CHAIN})`);
  }
  return { name, ...PAYOUT_CHAINS[name] };
}

const BASE58 = /^[1-9A-HJ-NP-Za-km-z]{32,44}$/;

/** Whether `text` looks like a Solana address (base58, 32–44 characters), so it can be refused with a clear reason. */
export function isSolanaAddress(text: string): boolean {
  return BASE58.test(text.trim());
}

/**
 * An EVM address from user input, returned checksummed. Accepts 0x + 40 hex digits in lowercase, uppercase or valid
 * EIP-55 mixed case (a mixed-case address with a wrong checksum is refused: it is most likely mistyped). The zero
 * address is refused: nothing sent there can be spent.
 */
export function parseEvmAddress(text: string, what = "address"): Address {
  const trimmed = text.trim();
  if (isSolanaAddress(trimmed)) throw new TesseraError("bad_request", SOLANA_NOT_SUPPORTED);
  if (!/^0x[0-9a-fA-F]{40}$/.test(trimmed)) {
    throw new TesseraError("bad_request", `"${text}" is not an EVM ${what}: give 0x followed by 40 hex digits`);
  }
  const hex = trimmed.slice(2);
  const mixedCase = hex !== hex.toLowerCase() && hex !== hex.toUpperCase();
  if (mixedCase && !isAddress(trimmed, { strict: true })) {
    throw new TesseraError("bad_request", `"${text}" has a wrong EIP-55 checksum (mixed case): check it, or give it in lowercase`);
  }
  const address = getAddress(trimmed);
  if (/^0x0{40}$/.test(address)) throw new TesseraError("bad_request", `the zero address cannot be a ${what}`);
  return address;
}

/** A JSON-RPC endpoint URL (http or https); throws bad_request otherwise. */
export function parseRpcUrl(text: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new TesseraError("bad_request", `"${text}" is not an RPC URL: give http(s)://host[:port][/path]`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new TesseraError("bad_request", `the RPC URL must be http:// or https://, got ${url.protocol}//`);
  }
  return url.toString();
}
