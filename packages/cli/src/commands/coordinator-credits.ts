import type { Command } from "commander";
import { TesseraError } from "@tessera/protocol";
import { printJson } from "../output.js";
import { openStoreFor } from "../store-options.js";
import { withStoreFlags } from "./coordinator-admission.js";
import { printedCommand } from "../config.js";

interface CreditFlags {
  dataDir?: string;
  db?: string;
  json?: boolean;
  amount: string;
  source?: string;
}

/** The smallest top-up (the seed's minimum): 1.00 USDC. */
const MIN_TOP_UP_MICRO = 1_000_000;

const SOURCE = /^[\p{L}\p{N} .,:;@#_+\-/()]{1,200}$/u;

/**
 * `tessera coordinator credits add|pool|show`: client credit and the reward pool, written to the coordinator's ledger
 * (the same store the running coordinator uses; both may run at once).
 */
export function addCreditCommands(coordinator: Command): void {
  const credits = coordinator.command("credits").description("client credit and the reward pool, in USDC (docs/billing.md)");

  withStoreFlags(credits.command("add"))
    .description("record a client's top-up (at least 1.00 USDC) and where it came from")
    .requiredOption("--key <name>", "the client's API key, by name or id (`tessera coordinator keys list`)")
    .requiredOption("--amount <usdc>", "USDC to add, e.g. 10 or 2.50")
    .option("--source <text>", "where the money came from (a payment reference)", "cli")
    .option("--json", "print JSON")
    .action(async (flags: CreditFlags & { key: string }) => {
      const { parseUsdc, topUp, usdc, clientCredit } = await import("@tessera/coordinator");
      const amount = parseUsdc(flags.amount, "--amount");
      if (amount < MIN_TOP_UP_MICRO) throw new TesseraError("bad_request", `the smallest top-up is 1.00 USDC; got ${usdc(amount)}`);
      const source = checkSource(flags.source ?? "cli");
      const store = await openStoreFor(flags);
      try {
        const key = (await store.listApiKeys()).find((k) => k.revokedAt === null && (k.name === flags.key || k.id === flags.key));
        if (!key) throw new TesseraError("not_found", `no active API key named "${flags.key}" (see \`${printedCommand()} coordinator keys list\`)`);
        const ownerId = `key:${key.id}`;
        await store.postTransaction(topUp(ownerId, amount, source, new Date()));
        const balance = (await store.getBalances([clientCredit(ownerId)])).get(clientCredit(ownerId)) ?? 0;
        if (flags.json) printJson({ key: key.name, key_id: key.id, added: { micro: amount, usdc: usdc(amount) }, balance: { micro: balance, usdc: usdc(balance) }, source });
        else process.stdout.write(`added ${usdc(amount)} USDC to "${key.name}" (source: ${source}); balance ${usdc(balance)} USDC\n`);
      } finally {
        await store.close();
      }
    });

  withStoreFlags(credits.command("pool"))
    .description("fund the reward pool that pays contributors their reward rates (a free network's only pay)")
    .requiredOption("--amount <usdc>", "USDC to add, e.g. 100")
    .option("--source <text>", "where the money came from", "cli")
    .option("--json", "print JSON")
    .action(async (flags: CreditFlags) => {
      const { parseUsdc, fundRewardPool, usdc, REWARD_POOL } = await import("@tessera/coordinator");
      const amount = parseUsdc(flags.amount, "--amount");
      if (amount <= 0) throw new TesseraError("bad_request", "--amount must be more than 0");
      const source = checkSource(flags.source ?? "cli");
      const store = await openStoreFor(flags);
      try {
        await store.postTransaction(fundRewardPool(amount, source, new Date()));
        const balance = (await store.getBalances([REWARD_POOL])).get(REWARD_POOL) ?? 0;
        if (flags.json) printJson({ added: { micro: amount, usdc: usdc(amount) }, pool: { micro: balance, usdc: usdc(balance) }, source });
        else process.stdout.write(`added ${usdc(amount)} USDC to the reward pool; it holds ${usdc(balance)} USDC\n`);
      } finally {
        await store.close();
      }
    });

  withStoreFlags(credits.command("show"))
    .description("every client's credit, the reward pool and the platform's fees")
    .option("--json", "print JSON")
    .action(async (flags: Omit<CreditFlags, "amount">) => {
      const { usdc } = await import("@tessera/coordinator");
      const store = await openStoreFor(flags);
      try {
        const keys = new Map((await store.listApiKeys()).map((k) => [`client:key:${k.id}:credit`, k.name]));
        const rows = [...(await store.listBalances("client:")), ...(await store.listBalances("platform:"))];
        if (flags.json) {
          printJson(rows.map((r) => ({ account: r.account, key: keys.get(r.account) ?? null, balance: { micro: r.balance, usdc: usdc(r.balance) } })));
          return;
        }
        if (rows.length === 0) process.stdout.write(`no credit recorded yet (\`${printedCommand()} coordinator credits add --key NAME --amount 10\`)\n`);
        for (const r of rows) process.stdout.write(`${(keys.get(r.account) ?? r.account).padEnd(40)} ${usdc(r.balance).padStart(14)} USDC\n`);
      } finally {
        await store.close();
      }
    });
}

function checkSource(source: string): string {
  if (!SOURCE.test(source)) throw new TesseraError("bad_request", "--source must be 1-200 letters, digits, spaces or simple punctuation");
  return source;
}
