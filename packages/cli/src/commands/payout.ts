import { existsSync } from "node:fs";
import type { Command } from "commander";
import { type Signer, TesseraError, signRequest } from "@tessera/protocol";
import { coordinatorAnswer } from "../coordinator-answer.js";
import { printJson } from "../output.js";
import { type NodeFlags, nodeConfigFrom, withNodeSettings } from "./node-options.js";
import { printedCommand } from "../config.js";

/**
 * `tessera payout set|list|request` and `tessera payments`: an operator's payout addresses and earnings
 * (docs/earnings.md). Requests are signed with the operator key (operator.toml) when this machine has one, else with
 * the node key (a self-operated node is its own operator). The coordinator is the node config's `coordinator_url`.
 */

interface PayoutAddressView {
  chain: string;
  address: string;
  default: boolean;
  updated_at: string;
}

interface EarningsView {
  operator_id: string;
  held_usdc: string;
  available_usdc: string;
  in_flight_usdc: string;
  paid_usdc: string;
  lifetime_usdc: string;
  forfeited_usdc: string;
  recent: Array<{ job_id: string; model: string; input_tokens: number; output_tokens: number; earned_usdc: string; status: string; completed_at: string; hold_until: string }>;
  batches: Array<{ id: string; chain: string; status: string; amount_usdc: string; tx_hash: string | null; created_at: string }>;
}

const TIMEOUT_MS = 10_000;

interface Client {
  signer: Signer;
  signedWith: "operator key" | "node key";
  request<T>(method: "GET" | "POST" | "PUT", path: string, body?: unknown): Promise<T>;
}

async function clientFor(flags: NodeFlags): Promise<Client> {
  const config = nodeConfigFrom(flags, false);
  const { signerFromKeyFile } = await import("@tessera/node/key-store");
  const operator = existsSync(config.paths.operatorKeyFile);
  if (!operator && !existsSync(config.paths.keyFile)) {
    throw new TesseraError("not_found", `no operator or node key in ${config.paths.operatorKeyFile} or ${config.paths.keyFile}: run \`${printedCommand()} init\` (or \`${printedCommand()} operator init\`) first`);
  }
  const signer = operator ? signerFromKeyFile(config.paths.operatorKeyFile, "operator") : signerFromKeyFile(config.paths.keyFile);
  const baseUrl = config.coordinator_url;
  return {
    signer,
    signedWith: operator ? "operator key" : "node key",
    async request<T>(method: "GET" | "POST" | "PUT", path: string, body?: unknown): Promise<T> {
      const base = new URL(baseUrl);
      const fullPath = `${base.pathname.replace(/\/+$/, "")}${path}`;
      const text = body === undefined ? "" : JSON.stringify(body);
      const headers: Record<string, string> = {
        ...(body === undefined ? {} : { "content-type": "application/json" }),
        ...signRequest(signer, { method, path: fullPath, body: text }, { nowSeconds: Math.floor(Date.now() / 1000) }),
      };
      let res: Response;
      try {
        res = await fetch(`${base.origin}${fullPath}`, { method, headers, ...(body === undefined ? {} : { body: text }), signal: AbortSignal.timeout(TIMEOUT_MS) });
      } catch (err) {
        const reason = err instanceof Error ? (err.cause instanceof Error ? err.cause.message : err.message) : String(err);
        throw new TesseraError("node_disconnected", `coordinator ${baseUrl} unreachable: ${reason}`);
      }
      return coordinatorAnswer<T>(res.status, await res.text());
    },
  };
}

/** A chain name as the coordinator spells it; the coordinator checks it is a payout chain (and refuses Solana). */
function chainArg(text: string): string {
  const chain = text.trim().toLowerCase();
  if (!/^[a-z0-9-]{1,32}$/.test(chain)) throw new TesseraError("bad_request", `--chain must be a chain name such as base, ethereum, polygon or arbitrum, got "${text}"`);
  return chain;
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!))).join("  ")).join("\n") + "\n";
}

export function addPayoutCommand(program: Command): void {
  const payout = program.command("payout").description("where your earnings are paid: payout addresses per chain, and asking to be paid now");

  withNodeSettings(
    payout
      .command("set")
      .description("set the payout address for a chain (EVM: base, ethereum, polygon, arbitrum; USDC); it becomes where payouts go")
      .requiredOption("--address <0x…>", "your EVM address on that chain")
      .option("--chain <name>", "base, ethereum, polygon or arbitrum", "base")
      .option("--json", "print JSON"),
  ).action(async (flags: NodeFlags & { address: string; chain: string; json?: boolean }) => {
    const chain = chainArg(flags.chain);
    const client = await clientFor(flags);
    const view = await client.request<PayoutAddressView>("PUT", `/api/v1/payouts/addresses/${chain}`, { address: flags.address });
    if (flags.json) return printJson(view);
    process.stdout.write(`payouts on ${view.chain} go to ${view.address} (now your default payout address; signed with the ${client.signedWith})\n`);
  });

  withNodeSettings(payout.command("list").description("your payout addresses; the first (most recently set) is where payouts go").option("--json", "print JSON")).action(
    async (flags: NodeFlags & { json?: boolean }) => {
      const client = await clientFor(flags);
      const { addresses } = await client.request<{ addresses: PayoutAddressView[] }>("GET", "/api/v1/payouts/addresses");
      if (flags.json) return printJson({ addresses });
      if (addresses.length === 0) return void process.stdout.write(`no payout address: set one with \`${printedCommand()} payout set --chain base --address 0x…\`\n`);
      process.stdout.write(table([["CHAIN", "ADDRESS", "DEFAULT", "SET"], ...addresses.map((a) => [a.chain, a.address, a.default ? "yes" : "", a.updated_at])]));
    },
  );

  withNodeSettings(
    payout
      .command("request")
      .description("ask to be paid your available earnings at the coordinator's next settlement pass (at least the chain's minimum)")
      .option("--chain <name>", "pay on this chain's address (it becomes your default); default: your default address")
      .option("--json", "print JSON"),
  ).action(async (flags: NodeFlags & { chain?: string; json?: boolean }) => {
    const body = flags.chain === undefined ? {} : { chain: chainArg(flags.chain) };
    const client = await clientFor(flags);
    const view = await client.request<{ chain: string; address: string; available_usdc: string; requested_at: string }>("POST", "/api/v1/payouts/requests", body);
    if (flags.json) return printJson(view);
    process.stdout.write(`payout of ${view.available_usdc} USDC requested on ${view.chain} to ${view.address}; it is paid at the coordinator's next settlement pass (\`${printedCommand()} payments\` shows it)\n`);
  });

  withNodeSettings(program.command("payments").description("your earnings: held, available, in flight, paid, lifetime; recent jobs and payouts").option("--json", "print JSON")).action(
    async (flags: NodeFlags & { json?: boolean }) => {
      const client = await clientFor(flags);
      const e = await client.request<EarningsView>("GET", "/api/v1/payouts/earnings");
      if (flags.json) return printJson(e);
      const lines = [
        `operator    ${e.operator_id}`,
        `held        ${e.held_usdc} USDC   (in the dispute window)`,
        `available   ${e.available_usdc} USDC   (paid at the next payout)`,
        `in flight   ${e.in_flight_usdc} USDC`,
        `paid        ${e.paid_usdc} USDC`,
        `lifetime    ${e.lifetime_usdc} USDC`,
        ...(e.forfeited_usdc !== "0" ? [`forfeited   ${e.forfeited_usdc} USDC`] : []),
        "",
      ];
      process.stdout.write(lines.join("\n"));
      if (e.recent.length === 0) process.stdout.write("no jobs yet\n");
      else process.stdout.write(table([["JOB", "MODEL", "TOKENS IN/OUT", "EARNED", "STATUS", "COMPLETED"], ...e.recent.map((r) => [r.job_id, r.model, `${r.input_tokens}/${r.output_tokens}`, `${r.earned_usdc} USDC`, r.status, r.completed_at])]));
      if (e.batches.length > 0) {
        process.stdout.write("\n" + table([["PAYOUT", "CHAIN", "AMOUNT", "STATUS", "TX"], ...e.batches.map((b) => [b.id, b.chain, `${b.amount_usdc} USDC`, b.status, b.tx_hash ?? ""])]));
      }
    },
  );
}
