import type { FastifyInstance, FastifyRequest } from "fastify";
import { type PayoutRequestView, TesseraError } from "@tessera/protocol";
import type { Clock } from "../clock.js";
import type { CoordinatorConfig } from "../config.js";
import type { Logger } from "../logger.js";
import { signerOf } from "../http/request-guard.js";
import { usdc } from "../payments/prices.js";
import { DEFAULT_PAYOUT_CHAIN, PAYOUT_CHAINS, type PayoutChainName, SOLANA_NOT_SUPPORTED, parseEvmAddress, parsePayoutChain } from "../settlement/chains.js";
import { operatorAvailable } from "../store/ledger-accounts.js";
import type { PayoutAddressRecord, Store } from "../store/types.js";
import { type EarningsDeps, earningsOf } from "./payouts-earnings.js";

/**
 * Payouts for operators (docs/earnings.md). Every route is signed by the operator's key, the
 * same BIP-340 request signature nodes use (`X-Tessera-Auth`): an operator is identified by its public key, and a
 * self-operated node's operator id is its node id, so that node's key signs too. A key that is no operator here is
 * refused with `forbidden`. An API key or an operator token never is accepted: they do not speak for the money.
 */

export interface PayoutAddressView {
  chain: string;
  address: string;
  /** The most recently set address: where payouts go. */
  default: boolean;
  updated_at: string;
}

export type { PayoutRequestView } from "@tessera/protocol";

export interface PayoutRouteDeps {
  clock: Clock;
  logger: Logger;
  /** Which chains this coordinator settles on. */
  config: Pick<CoordinatorConfig, "chainRpc" | "vaults" | "payerKeyFile">;
  store: EarningsDeps["store"] & Pick<Store, "getOperator" | "listPayoutAddresses" | "setPayoutAddress" | "requestPayout">;
}

function toAddressView(a: PayoutAddressRecord, index: number): PayoutAddressView {
  return { chain: a.chain, address: a.address, default: index === 0, updated_at: a.updatedAt.toISOString() };
}

/** The signer, when it is an operator of this coordinator. */
export async function operatorOf(deps: PayoutRouteDeps, request: FastifyRequest): Promise<string> {
  const operatorId = signerOf(request);
  if (!(await deps.store.getOperator(operatorId))) {
    throw new TesseraError("forbidden", `key ${operatorId.slice(0, 12)}… is not an operator here: sign with your operator key (or, for a self-operated node, its node key) after a node has registered under it`);
  }
  return operatorId;
}

/** A payout chain from a path or body, with Solana refused by name. */
function chainOf(raw: string): PayoutChainName {
  if (raw.trim().toLowerCase() === "solana") throw new TesseraError("bad_request", SOLANA_NOT_SUPPORTED);
  return parsePayoutChain(raw).name;
}

function objectBody(body: unknown, allowEmpty: boolean): Record<string, unknown> {
  if ((body === undefined || body === null) && allowEmpty) return {};
  if (typeof body !== "object" || body === null || Array.isArray(body)) throw new TesseraError("bad_request", "the body must be a JSON object");
  return body as Record<string, unknown>;
}

function refuseUnknown(body: Record<string, unknown>, known: readonly string[]): void {
  const unknown = Object.keys(body).filter((k) => !known.includes(k));
  if (unknown.length > 0) throw new TesseraError("bad_request", `unknown field${unknown.length > 1 ? "s" : ""} ${unknown.join(", ")}: give only ${known.join(", ")}`);
}

/** Whether this coordinator settles on `chain`: an RPC URL, a vault and the payer key are configured (configured-chains.ts). */
function settlesOn(deps: Pick<PayoutRouteDeps, "config">, chain: PayoutChainName): boolean {
  return deps.config.chainRpc[chain] !== undefined && deps.config.vaults[chain] !== undefined && deps.config.payerKeyFile !== undefined;
}

export type PayoutRequestDeps = Pick<PayoutRouteDeps, "clock" | "logger" | "config"> & {
  store: Pick<Store, "getBalances" | "listPayoutAddresses" | "setPayoutAddress" | "requestPayout">;
};

/**
 * Asks for `operatorId` to be paid at the next settlement pass (`POST /api/v1/payouts/requests`, and the dashboard's
 * operator page, which calls this rather than a copy). With `chainName`, that chain's address becomes the payout
 * address (the worker pays to the most recently set one). Refused with `bad_request`, changing nothing, when no
 * address is set, the coordinator does not settle on that chain, or the available earnings are below the chain's
 * minimum.
 */
export async function requestPayoutFor(deps: PayoutRequestDeps, operatorId: string, chainName: string | undefined): Promise<PayoutRequestView> {
  const wanted = chainName === undefined ? undefined : chainOf(chainName);
  const addresses = await deps.store.listPayoutAddresses(operatorId);
  const target = wanted === undefined ? addresses[0] : addresses.find((a) => a.chain === wanted);
  if (!target) {
    const chain = wanted ?? DEFAULT_PAYOUT_CHAIN;
    throw new TesseraError("bad_request", `no payout address${wanted ? ` on ${wanted}` : ""} is set: set one first with \`tessera payout set --chain ${chain} --address 0x…\``);
  }
  const chain = parsePayoutChain(target.chain).name;
  if (!settlesOn(deps, chain)) {
    const served = (Object.keys(PAYOUT_CHAINS) as PayoutChainName[]).filter((c) => settlesOn(deps, c));
    throw new TesseraError("bad_request", `this coordinator does not pay out on ${chain} (${served.length > 0 ? `it pays on ${served.join(", ")}` : "no payout chain is configured"}); set an address on a chain it pays on`);
  }
  const available = (await deps.store.getBalances([operatorAvailable(operatorId)])).get(operatorAvailable(operatorId)) ?? 0;
  const minimum = Number(PAYOUT_CHAINS[chain].minPayoutMicroUsdc);
  if (available < minimum) {
    throw new TesseraError(
      "bad_request",
      `available earnings are ${usdc(available)} USDC; a payout on ${chain} needs at least ${usdc(minimum)} USDC, ${usdc(minimum - available)} USDC more (held earnings become available when their hold ends)`,
    );
  }
  const at = new Date(deps.clock.now());
  if (target !== addresses[0]) await deps.store.setPayoutAddress({ ...target, updatedAt: at });
  await deps.store.requestPayout(operatorId, at);
  deps.logger.info({ operator: operatorId.slice(0, 12), chain, available }, "payout requested");
  return { chain, address: target.address, available, available_usdc: usdc(available), requested_at: at.toISOString() };
}

export function payoutRoutes(app: FastifyInstance, deps: PayoutRouteDeps): void {
  app.put<{ Params: { chain: string } }>("/api/v1/payouts/addresses/:chain", { config: { auth: "node" } }, async (request): Promise<PayoutAddressView> => {
    const operatorId = await operatorOf(deps, request);
    const chain = chainOf(request.params.chain);
    const body = objectBody(request.body, false);
    refuseUnknown(body, ["address"]);
    if (typeof body.address !== "string") throw new TesseraError("bad_request", `give the payout address as "address": "0x…"`);
    const address = parseEvmAddress(body.address, "payout address");
    const record: PayoutAddressRecord = { operatorId, chain, address, updatedAt: new Date(deps.clock.now()) };
    await deps.store.setPayoutAddress(record);
    deps.logger.info({ operator: operatorId.slice(0, 12), chain, address }, "payout address set");
    return toAddressView(record, 0);
  });

  app.get("/api/v1/payouts/addresses", { config: { auth: "node" } }, async (request): Promise<{ addresses: PayoutAddressView[]; default_chain: string }> => {
    const operatorId = await operatorOf(deps, request);
    return { addresses: (await deps.store.listPayoutAddresses(operatorId)).map(toAddressView), default_chain: DEFAULT_PAYOUT_CHAIN };
  });

  /** Asks to be paid at the next settlement pass (`requestPayoutFor`). */
  app.post("/api/v1/payouts/requests", { config: { auth: "node" } }, async (request, reply): Promise<PayoutRequestView> => {
    const operatorId = await operatorOf(deps, request);
    const body = objectBody(request.body, true);
    refuseUnknown(body, ["chain"]);
    if (body.chain !== undefined && typeof body.chain !== "string") throw new TesseraError("bad_request", "chain must be a string such as \"base\"");
    const view = await requestPayoutFor(deps, operatorId, body.chain);
    reply.code(202);
    return view;
  });

  app.get("/api/v1/payouts/earnings", { config: { auth: "node" } }, async (request) => earningsOf(deps, await operatorOf(deps, request)));
}
