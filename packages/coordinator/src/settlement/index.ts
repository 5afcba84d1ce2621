// On-chain settlement of payouts: the PayoutVault contract, the chains it runs on, and the payer's key file.
export * from "./chains.js";
export * from "./payer-key.js";
export * from "./vault-client.js";
export { PAYOUT_VAULT, TEST_USDC } from "./contract-artifacts.js";
