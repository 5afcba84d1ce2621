import { TesseraError, type ErrorCode } from "@tessera/protocol";
import {
  BaseError,
  ContractFunctionRevertedError,
  HttpRequestError,
  InsufficientFundsError,
  TimeoutError,
  WaitForTransactionReceiptTimeoutError,
  decodeErrorResult,
  type Hex,
} from "viem";
import { PAYOUT_VAULT, TEST_USDC } from "./contract-artifacts.js";

const CONTRACT_ERRORS = [...PAYOUT_VAULT.abi, ...TEST_USDC.abi].filter((item) => item.type === "error");

/** What each custom error of PayoutVault / TestUsdc means to the caller, as one of the protocol's error codes. */
const REVERTS: Record<string, { code: ErrorCode; message: (args: readonly unknown[]) => string }> = {
  AlreadySettled: { code: "conflict", message: () => "this batch is already settled on-chain: nothing was paid again" },
  NotPayer: { code: "forbidden", message: () => "this key is not the vault's payer: only the payer may settle" },
  NotOwner: { code: "forbidden", message: () => "this key is not the vault's owner" },
  NotMinter: { code: "forbidden", message: () => "this key did not deploy the test token, so it cannot mint" },
  EmptyBatch: { code: "bad_request", message: () => "a batch needs at least one recipient" },
  LengthMismatch: { code: "bad_request", message: () => "recipients and amounts differ in length" },
  ZeroAddress: { code: "bad_request", message: () => "the zero address cannot be paid, be a payer or a token" },
  NotAContract: { code: "bad_request", message: ([token]) => `the token ${String(token)} is not a contract on this chain` },
  TransferFailed: {
    code: "conflict",
    message: ([to, amount]) => `the token refused to pay ${String(amount)} to ${String(to)}, most often because the vault holds less than the batch total: nothing in the batch was paid`,
  },
  InsufficientBalance: { code: "conflict", message: () => "the sender holds fewer tokens than the amount" },
};

/**
 * Turns what viem throws into a TesseraError with a stable code: a contract revert by its custom error's name, an RPC
 * that does not answer as `unreachable`, a receipt wait that gives up as `timeout`, a payer out of gas money as `conflict`. Anything else is `internal_error`
 * with viem's short message. `action` says what was being done, e.g. "settle batch 42".
 */
export function settlementError(err: unknown, action: string, rpcUrl: string): TesseraError {
  if (err instanceof TesseraError) return err;
  if (!(err instanceof BaseError)) return new TesseraError("internal_error", `${action}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  const reverted = err.walk((e) => e instanceof ContractFunctionRevertedError);
  const decoded = reverted instanceof ContractFunctionRevertedError ? reverted.data : decodeRevertData(err);
  if (decoded) {
    const known = REVERTS[decoded.errorName];
    if (known) return new TesseraError(known.code, `${action}: ${known.message(decoded.args ?? [])}`, { cause: err });
  }
  if (reverted instanceof ContractFunctionRevertedError) {
    return new TesseraError("conflict", `${action}: the contract reverted (${reverted.reason ?? "no reason given"})`, { cause: err });
  }
  if (err instanceof WaitForTransactionReceiptTimeoutError) {
    return new TesseraError("timeout", `${action}: not mined within the wait (still pending, or dropped)`, { cause: err });
  }
  if (err.walk((e) => e instanceof HttpRequestError || e instanceof TimeoutError)) {
    return new TesseraError("unreachable", `${action}: the RPC at ${rpcUrl} did not answer (${err.shortMessage})`, { cause: err });
  }
  if (err.walk((e) => e instanceof InsufficientFundsError)) {
    return new TesseraError("conflict", `${action}: the sending account has too little native currency (ETH) to pay for gas`, { cause: err });
  }
  return new TesseraError("internal_error", `${action}: ${err.shortMessage}`, { cause: err });
}

/**
 * Revert data on errors viem does not decode against an ABI, such as a reverting constructor (deployContract): the
 * node's error carries the raw bytes as `data`.
 */
function decodeRevertData(err: BaseError): { errorName: string; args?: readonly unknown[] } | undefined {
  let found: { errorName: string; args?: readonly unknown[] } | undefined;
  err.walk((e) => {
    const data = (e as { data?: unknown }).data;
    if (typeof data !== "string" || !/^0x[0-9a-fA-F]{8}/.test(data)) return false;
    try {
      found = decodeErrorResult({ abi: CONTRACT_ERRORS, data: data as Hex });
      return true;
    } catch {
      return false;
    }
  });
  return found;
}
