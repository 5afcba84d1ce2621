import { randomUUID } from "node:crypto";
import type { Command } from "commander";
import { loadCoordinatorConfig, settingsHelp, type CoordinatorConfig } from "@tessera/coordinator/config";
import { TesseraError, encodeNpub } from "@tessera/protocol";
import { openStoreFor } from "../store-options.js";
import { printJson } from "../output.js";
import { ensurePortFree } from "../port-check.js";
import { FORCE_HINT, waitForSignal } from "../wait-for-signal.js";
import { addAdmissionCommands, withStoreFlags } from "./coordinator-admission.js";
import { addSettlementCommands } from "./coordinator-settlement.js";
import { addCreditCommands } from "./coordinator-credits.js";
import { printedCommand } from "../config.js";

interface StartOptions {
  port?: string;
  host?: string;
  dataDir?: string;
  db?: string;
  open?: boolean;
  admission?: string;
  referenceNode?: string[];
  checkRate?: string;
  canaryInterval?: string;
  rateLimit?: string;
  queueTimeout?: string;
  jobTimeout?: string;
  acceptTimeout?: string;
  firstTokenTimeout?: string;
  stallTimeout?: string;
  resultTtl?: string;
  offlineAfter?: string;
  logLevel?: string;
  logFormat?: string;
  heartbeatInterval?: string;
  alias?: string[];
  shardReplicas?: string;
  ledger?: string;
  prices?: string;
  fee?: string;
  hold?: string;
  payoutSchedule?: string;
  payoutThreshold?: string;
  chainRpc?: string[];
  vault?: string[];
  payerKeyFile?: string;
  confirmations?: string;
  secureCookies?: string;
  replicaId?: string;
  bus?: string;
}

export function coordinatorConfigFromOptions(options: StartOptions): CoordinatorConfig {
  return loadCoordinatorConfig({
    port: options.port,
    host: options.host,
    dataDir: options.dataDir,
    dbUrl: options.db,
    open: options.open,
    admission: options.admission,
    referenceNodes: options.referenceNode?.join(","),
    checkRate: options.checkRate,
    canaryIntervalS: options.canaryInterval,
    rateLimitPerMinute: options.rateLimit,
    pendingTimeoutS: options.queueTimeout,
    jobTimeoutS: options.jobTimeout,
    acceptTimeoutS: options.acceptTimeout,
    firstTokenTimeoutS: options.firstTokenTimeout,
    stallTimeoutS: options.stallTimeout,
    resultTtlS: options.resultTtl,
    offlineAfterS: options.offlineAfter,
    logLevel: options.logLevel,
    logFormat: options.logFormat,
    heartbeatIntervalS: options.heartbeatInterval,
    modelAliases: options.alias?.join(","),
    shardReplicas: options.shardReplicas,
    ledger: options.ledger,
    pricesFile: options.prices,
    feeBps: options.fee,
    holdS: options.hold,
    payoutSchedule: options.payoutSchedule,
    payoutThreshold: options.payoutThreshold,
    chainRpc: options.chainRpc?.join(","),
    vaults: options.vault?.join(","),
    payerKeyFile: options.payerKeyFile,
    confirmations: options.confirmations,
    secureCookies: options.secureCookies,
    replicaId: options.replicaId,
    busUrl: options.bus,
  });
}

export function addCoordinatorCommand(program: Command): void {
  const coordinator = program.command("coordinator").description("run and administer the coordinator (control plane)");

  coordinator
    .command("start")
    .description("start the coordinator in the foreground")
    .option("--port <port>", "HTTP port (default 7337)")
    .option("--host <address>", "address to listen on (default 127.0.0.1)")
    .option("--data-dir <dir>", "where the SQLite store lives")
    .option("--db <url>", "postgres://… to use PostgreSQL instead of SQLite")
    .option("--open", "accept requests without an API key, rate-limited per address")
    .option("--admission <mode>", "who may join as an operator: open, token (needs a join token; the default unless --open) or approval")
    .option("--reference-node <key...>", "a node or operator key (npub or hex) trusted as a spot-check reference (repeatable)")
    .option("--check-rate <share>", "spot-check this share (0 to 1) of every node's answers instead of the tier rates")
    .option("--canary-interval <s>", "mean seconds between the checked canary jobs sent to each node (default 3600; 0: none)")
    .option("--rate-limit <n>", "requests per minute per key or open client")
    .option("--queue-timeout <s>", "seconds a job may wait for a free node")
    .option("--job-timeout <s>", "seconds before a job fails with `timeout`")
    .option("--accept-timeout <s>", "seconds a node has to accept a pushed job (default 5)")
    .option("--first-token-timeout <s>", "least seconds a node that accepted a job has to send its first token before the job moves on (default 30)")
    .option("--stall-timeout <s>", "least seconds a node may go silent between tokens before the job moves on (default 15)")
    .option("--result-ttl <s>", "seconds prompts and outputs are kept")
    .option("--log-level <level>", "trace, debug, info, warn, error or silent")
    .option("--log-format <format>", "auto (readable on a terminal, JSON otherwise), pretty or json")
    .option("--offline-after <s>", "seconds without a heartbeat before a node is asked (a ping on its session) and, unanswered for 2 s, offline")
    .option("--heartbeat-interval <s>", "heartbeat interval nodes are told to use")
    .option("--shard-replicas <n>", "copies of every layer span of a sharded model placed up front (default 2)")
    .option("--alias <alias=model...>", "model alias, e.g. gpt-4o-mini=tessera-demo (repeatable)")
    .option("--ledger <on|off>", "escrow, charges, signed receipts and earnings (default on)")
    .option("--prices <file>", "JSON price table (docs/billing.md); without it every model is free")
    .option("--fee <share>", "the platform's share of what clients pay, 0 to 1 (default 0.15)")
    .option("--hold <duration>", "how long earnings are held before payout, e.g. 7d (the default) or 3600s")
    .option("--payout-schedule <when>", "auto-payouts: hourly, daily (default), weekly or off")
    .option("--payout-threshold <usdc>", "auto-pay an operator once its available earnings reach this (default: the chain's minimum)")
    .option("--chain-rpc <chain=url...>", "JSON-RPC URL of a payout chain, e.g. base=https://mainnet.base.org (repeatable)")
    .option("--vault <chain=address...>", "the payout vault on a chain, from `tessera coordinator settlement deploy` (repeatable)")
    .option("--payer-key-file <file>", "the payer's private key (0x + 64 hex, mode 0600)")
    .option("--confirmations <n>", "blocks a settlement must be buried under before it counts as paid (default 2)")
    .option("--secure-cookies <when>", "dashboard session cookies Secure: auto (the default: when TLS reaches the coordinator itself) or always (behind a TLS-terminating proxy)")
    .option("--bus <url>", "nats://host:port of the NATS server replicas share: every replica sees every node and routes to it (needs --db postgres://…)")
    .option("--replica-id <id>", "this replica's id among coordinators sharing one PostgreSQL database: 1-40 of a-z, 0-9 and - (default: made once, kept in <data dir>/replica-id)")
    .addHelpText("after", `\nSettings (flag, environment variable, meaning):\n${settingsHelp()}`)
    .action(async (options: StartOptions) => {
      const config = coordinatorConfigFromOptions(options);
      await ensurePortFree(config.host, config.port);
      const { startCoordinator } = await import("@tessera/coordinator");
      const running = await startCoordinator(config);
      const where = config.dbUrl ? "PostgreSQL" : `${config.dataDir}/coordinator.db`;
      process.stdout.write(`tessera coordinator listening on ${running.url} (store: ${where}${config.open ? ", open mode" : ""}, admission: ${config.admission}, replica: ${running.replica.id}${config.busUrl ? `, bus: ${config.busUrl}` : ""})\n`);
      await waitForSignal((signal) => process.stdout.write(`${signal} received: shutting down (${FORCE_HINT})\n`));
      await running.close();
      process.exit(0);
    });

  const keys = coordinator.command("keys").description("manage API keys (bearer tokens) for the client API");
  const storeFlags = withStoreFlags;

  storeFlags(keys.command("create"))
    .description("create an API key; prints the token once (only its hash is stored)")
    .requiredOption("--name <name>", "a name to recognise the key by")
    .option("--rate-limit <n>", "requests per minute for this key", "600")
    .option("--json", "print JSON")
    .action(async (options: { name: string; rateLimit: string; json?: boolean; dataDir?: string; db?: string }) => {
      const name = options.name.trim();
      if (!/^[\w.@-]{1,64}$/.test(name)) throw new TesseraError("bad_request", "--name must be 1-64 letters, digits, '.', '_', '-' or '@'");
      const limit = Number(options.rateLimit);
      if (!Number.isInteger(limit) || limit < 1) throw new TesseraError("bad_request", "--rate-limit must be a positive whole number");
      const store = await openStoreFor(options);
      try {
        const { generateApiToken, hashApiToken } = await import("@tessera/coordinator");
        const token = generateApiToken();
        const key = await store.createApiKey({ id: randomUUID(), name, tokenSha256: hashApiToken(token), rateLimitPerMinute: limit, createdAt: new Date() });
        if (options.json) printJson({ id: key.id, name: key.name, token, rate_limit_per_minute: limit });
        else process.stdout.write(`created API key "${name}" (${key.id})\n\n  ${token}\n\nThis token is shown once; store it now. Use it as: Authorization: Bearer <token>\n`);
      } finally {
        await store.close();
      }
    });

  storeFlags(keys.command("list"))
    .description("list API keys (never the tokens)")
    .option("--json", "print JSON")
    .action(async (options: { json?: boolean; dataDir?: string; db?: string }) => {
      const store = await openStoreFor(options);
      try {
        const list = await store.listApiKeys();
        if (options.json) {
          printJson(list.map((k) => ({ id: k.id, name: k.name, created_at: k.createdAt.toISOString(), revoked: k.revokedAt !== null, rate_limit_per_minute: k.rateLimitPerMinute })));
          return;
        }
        if (list.length === 0) return void process.stdout.write(`no API keys; create one with \`${printedCommand()} coordinator keys create --name NAME\`\n`);
        for (const k of list) {
          process.stdout.write(`${k.id}  ${k.name.padEnd(20)} ${k.revokedAt ? "revoked" : "active "}  ${k.rateLimitPerMinute}/min  created ${k.createdAt.toISOString()}\n`);
        }
      } finally {
        await store.close();
      }
    });

  storeFlags(keys.command("revoke"))
    .description("revoke an API key by id or name; requests with it get 401 at once")
    .argument("<id-or-name>", "the key's id or name")
    .action(async (idOrName: string, options: { dataDir?: string; db?: string }) => {
      const store = await openStoreFor(options);
      try {
        if (!(await store.revokeApiKey(idOrName, new Date()))) throw new TesseraError("not_found", `no active API key with id or name "${idOrName}"`);
        process.stdout.write(`revoked ${idOrName}\n`);
      } finally {
        await store.close();
      }
    });

  keys
    .command("platform")
    .description("print the platform public key, which countersigns every receipt (clients pin it); made on the coordinator's first start")
    .option("--data-dir <dir>", "the coordinator's data dir (TESSERA_DATA_DIR)")
    .option("--json", "print JSON")
    .action(async (options: { dataDir?: string; json?: boolean }) => {
      const { dataDir } = loadCoordinatorConfig({ dataDir: options.dataDir });
      // The key file alone: not the whole coordinator (its import costs seconds on a busy machine).
      const { readPlatformPublicKey, platformKeyPath } = await import("@tessera/coordinator/platform-key");
      const hex = readPlatformPublicKey(dataDir);
      if (options.json) return printJson({ platform_key: hex, npub: encodeNpub(hex), file: platformKeyPath(dataDir) });
      process.stdout.write(`platform key (countersigns receipts; pin it with \`tessera receipt verify --platform-key\`)\n  hex:  ${hex}\n  npub: ${encodeNpub(hex)}\n`);
    });

  addAdmissionCommands(coordinator);
  addSettlementCommands(coordinator);
  addCreditCommands(coordinator);
}
