import { describe, expect, it } from "vitest";
import { DEFAULT_PAYOUT_CHAIN, PAYOUT_CHAINS, isPayoutChain, isSolanaAddress, parseEvmAddress, parsePayoutChain, parseRpcUrl } from "./chains.js";

const CHECKSUMMED = "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913";
const SOLANA = "9WzDXwBbmkg8ZTbNMqUxvQRAyrZzDsGYdLVL9zYtAWWM";

describe("payout chains", () => {
  it("are base (the default), ethereum, polygon and arbitrum with their chain ids and minimum payouts", () => {
    expect(DEFAULT_PAYOUT_CHAIN).toBe("base");
    expect(Object.fromEntries(Object.entries(PAYOUT_CHAINS).map(([n, c]) => [n, [c.chainId, c.minPayoutMicroUsdc]]))).toEqual({
      base: [8453, 1_000_000n],
      ethereum: [1, 10_000_000n],
      polygon: [137, 1_000_000n],
      arbitrum: [42161, 1_000_000n],
    });
    for (const chain of Object.values(PAYOUT_CHAINS)) expect(parseEvmAddress(chain.usdc)).toBe(chain.usdc);
  });

  it("are recognised by name; anything else is refused naming the supported ones", () => {
    expect(isPayoutChain("polygon")).toBe(true);
    expect(isPayoutChain("solana")).toBe(false);
    expect(isPayoutChain("toString")).toBe(false);
    expect(parsePayoutChain("arbitrum")).toMatchObject({ name: "arbitrum", chainId: 42161 });
    expect(() => parsePayoutChain("optimism")).toThrow(expect.objectContaining({ code: "bad_request", message: expect.stringMatching(/base, ethereum, polygon, arbitrum/) }));
  });
});

describe("payout addresses", () => {
  it("takes lowercase or checksummed EVM addresses and returns them checksummed", () => {
    expect(parseEvmAddress(CHECKSUMMED.toLowerCase())).toBe(CHECKSUMMED);
    expect(parseEvmAddress(` ${CHECKSUMMED}\n`)).toBe(CHECKSUMMED);
    expect(parseEvmAddress(`0x${CHECKSUMMED.slice(2).toUpperCase()}`)).toBe(CHECKSUMMED);
  });

  it("refuses a mistyped checksum, wrong lengths, non-hex and the zero address, with bad_request", () => {
    const wrongCase = CHECKSUMMED.replace("fCD6", "fcD6");
    for (const [text, message] of [
      [wrongCase, /checksum/],
      ["0x1234", /not an EVM address: give 0x followed by 40 hex digits/],
      [`${CHECKSUMMED}00`, /40 hex digits/],
      ["0xZZ3589fcd6edb6e08f4c7c32d4f71b54bda02913", /40 hex digits/],
      ["alice.eth", /40 hex digits/],
      ["0x0000000000000000000000000000000000000000", /zero address/],
    ] as const) {
      expect(() => parseEvmAddress(text), text).toThrow(expect.objectContaining({ code: "bad_request", message: expect.stringMatching(message) }));
    }
  });

  it("recognises a Solana address and refuses it with the reason", () => {
    expect(isSolanaAddress(SOLANA)).toBe(true);
    expect(isSolanaAddress("11111111111111111111111111111111")).toBe(true);
    expect(isSolanaAddress(CHECKSUMMED)).toBe(false);
    expect(isSolanaAddress("0OIl".repeat(10))).toBe(false);
    expect(() => parseEvmAddress(SOLANA)).toThrow(
      expect.objectContaining({
        code: "bad_request",
        message: "Solana payouts are not supported yet; give an EVM (0x…) address for base, ethereum, polygon or arbitrum",
      }),
    );
  });

  it("takes http(s) RPC URLs only", () => {
    expect(parseRpcUrl("https://mainnet.base.org")).toBe("https://mainnet.base.org/");
    expect(() => parseRpcUrl("mainnet.base.org")).toThrow(expect.objectContaining({ code: "bad_request" }));
    expect(() => parseRpcUrl("ws://127.0.0.1:8545")).toThrow(expect.objectContaining({ code: "bad_request", message: expect.stringMatching(/http/) }));
  });
});
