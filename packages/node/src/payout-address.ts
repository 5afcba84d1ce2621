import { type Signer, TesseraError, signRequest } from "@tessera/protocol";
import type { NodeLogger } from "./logger.js";
import { setTopLevelKey } from "./config-file-edit.js";
import { type FetchLike, coordinatorUrl, errorFromResponse } from "./signed-http.js";

/**
 * `payout_address` (`tessera start --payout 0x…`): a self-operated node (no operator delegation: the node key is its
 * operator's key) sets it as its Base payout address with the existing payments API, `PUT
 * /api/v1/payouts/addresses/base` (docs/earnings.md). A node under an operator key only logs it: payout addresses
 * belong to the operator, who sets them with `tessera payout set` signed by the operator key. Never fatal.
 */
export async function registerPayoutAddress(o: {
  address: string;
  selfOperated: boolean;
  fetch: FetchLike;
  signer: Signer;
  baseUrl: string;
  nowSeconds: () => number;
  logger: NodeLogger;
}): Promise<void> {
  if (!o.selfOperated) {
    o.logger.info(`payout_address ${o.address} is stored in node.toml; this node counts under an operator key, so the operator sets payout addresses (tessera payout set)`);
    return;
  }
  const { url, signedPath } = coordinatorUrl(o.baseUrl, "/api/v1/payouts/addresses/base");
  const body = JSON.stringify({ address: o.address });
  try {
    const res = await o.fetch(url, {
      method: "PUT",
      headers: { "content-type": "application/json", ...signRequest(o.signer, { method: "PUT", path: signedPath, body }, { nowSeconds: o.nowSeconds() }) },
      body,
    });
    const raw = await res.text();
    if (!res.ok) throw errorFromResponse(res.status, raw, res.headers.get("retry-after"));
    o.logger.info(`payout address set: ${o.address} on base`);
  } catch (err) {
    const why = err instanceof TesseraError ? `${err.code}: ${err.message}` : err instanceof Error ? err.message : String(err);
    o.logger.warn(`could not set payout address ${o.address} with the coordinator (${why}); set it later with tessera payout set`);
  }
}

/** Stores `payout_address` in node.toml (`tessera start --payout 0x…` keeps it for later runs). */
export function storePayoutAddress(configFile: string, address: string): void {
  setTopLevelKey(configFile, "payout_address", address);
}
