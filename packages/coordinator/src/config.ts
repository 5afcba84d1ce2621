import { homedir } from "node:os";
import { join } from "node:path";
import { LOG_FORMATS, type LogFormatSetting, TesseraError, parseDuration, parsePublicKey } from "@tessera/protocol";
import { ADMISSION_MODES, type AdmissionMode } from "./trust/admission-modes.js";
import { hideCredentials, parseBusUrl } from "./bus/bus-url.js";

// The CLI shows the bus's address as this reads it (without the secret) on its start-up line.
export { parseBusUrl };

/**
 * The coordinator's settings: the only place in this package that reads `process.env`.
 * Precedence: flag, environment, default. The same table prints in `--help`.
 */
export interface CoordinatorConfig {
  host: string;
  port: number;
  dataDir: string;
  /** `postgres://…` for PostgreSQL; undefined for the embedded SQLite file in the data dir. */
  dbUrl: string | undefined;
  /** Let requests without a bearer token through, rate-limited per client address. */
  open: boolean;
  /** Who may join as an operator: `open`, `token` (a join token) or `approval` (the owner approves). */
  admission: AdmissionMode;
  /** Node or operator keys (hex) that may serve as spot-check references whatever their tier. */
  referenceNodes: string[];
  /** Replaces every tier's spot-check rate (0..1); undefined: each tier's own rate. */
  checkRate: number | undefined;
  /** Mean seconds between canary jobs to each node; 0 turns canaries off. */
  canaryIntervalS: number;
  rateLimitPerMinute: number;
  jobTimeoutS: number;
  pendingTimeoutS: number;
  acceptTimeoutS: number;
  /** The least time an accepted job may wait for its first token before it moves to another node. */
  firstTokenTimeoutS: number;
  /** The least time an accepted job may go between tokens before it moves to another node. */
  stallTimeoutS: number;
  resultTtlS: number;
  heartbeatIntervalS: number;
  offlineAfterS: number;
  /** Model aliases: `alias=model,alias2=model2`. */
  modelAliases: Record<string, string>;
  logLevel: "trace" | "debug" | "info" | "warn" | "error" | "silent";
  /** `auto`: readable lines on a terminal, JSON records otherwise; or always `pretty` / `json`. */
  logFormat: LogFormatSetting;
  /** Copies of every span of a sharded model placed up front (1 = no standby copy). */
  shardReplicas: number;
  /** Keep the ledger: escrow, charges, receipts, earnings (off: jobs are free and nothing is recorded). */
  ledger: boolean;
  /** The price table file (payments/prices.ts); undefined: every model is free. */
  pricesFile: string | undefined;
  /** The platform's share of what a client pays, in basis points (1500 = 15 %). */
  feeBps: number;
  /** Seconds earnings are held (the dispute window) before they can be paid out. */
  holdS: number;
  /** When auto-payouts run: hourly, daily, weekly or off. */
  payoutSchedule: "hourly" | "daily" | "weekly" | "off";
  /** Auto-payout pays an operator whose available earnings reach this (micro-USDC); never below the chain's minimum. */
  payoutThreshold: number;
  /** JSON-RPC URL per payout chain (`base=https://…`); a chain without one is not settled. */
  chainRpc: Record<string, string>;
  /** The payout vault's address per chain (`base=0x…`). */
  vaults: Record<string, string>;
  /** The file holding the payer's private key (mode 0600). */
  payerKeyFile: string | undefined;
  /** Blocks a settlement transaction must be buried under before it counts as paid. */
  confirmations: number;
  /**
   * When the dashboard's session cookie is marked `Secure`: `auto`, when TLS reaches this process itself; `always`,
   * for a coordinator behind a TLS-terminating proxy (browsers reach it over https, the proxy over plain http).
   * An explicit setting rather than `X-Forwarded-Proto`, which any client can send.
   */
  secureCookies: "auto" | "always";
  /**
   * This coordinator's name among replicas sharing one database (replicas/design.md): it owns the jobs it creates
   * under it. Undefined: the id kept in `<data dir>/replica-id`, generated on the first start.
   */
  replicaId: string | undefined;
  /**
   * `nats://host:port` of the NATS server replicas share (bus/design.md): every replica then sees every node and routes
   * jobs to nodes whose sessions other replicas hold. Undefined: no bus, this coordinator runs alone.
   */
  busUrl: string | undefined;
}

export interface SettingSpec {
  key: keyof CoordinatorConfig;
  flag: string;
  /** The flag's value as `--help` names it (`<n>`; `<x...>` repeatable); empty for a switch (`--open`). */
  arg: string;
  env: string;
  default: string;
  description: string;
}

export const COORDINATOR_SETTINGS: SettingSpec[] = [
  { key: "host", flag: "--host", arg: "<address>", env: "TESSERA_HOST", default: "127.0.0.1", description: "address to listen on" },
  { key: "port", flag: "--port", arg: "<port>", env: "TESSERA_PORT", default: "7337", description: "HTTP port" },
  { key: "dataDir", flag: "--data-dir", arg: "<dir>", env: "TESSERA_DATA_DIR", default: "~/.local/share/tessera", description: "where the SQLite store lives" },
  { key: "dbUrl", flag: "--db", arg: "<url>", env: "TESSERA_DB", default: "(SQLite in the data dir)", description: "postgres://… to use PostgreSQL" },
  { key: "open", flag: "--open", arg: "", env: "TESSERA_OPEN", default: "false", description: "accept requests without an API key (rate-limited per address)" },
  { key: "admission", flag: "--admission", arg: "<mode>", env: "TESSERA_ADMISSION", default: "token (open with --open)", description: "who may join as an operator: open, token (needs a join token) or approval (the owner approves each)" },
  { key: "referenceNodes", flag: "--reference-node", arg: "<key...>", env: "TESSERA_REFERENCE_NODES", default: "", description: "node or operator keys (npub or hex, comma-separated) trusted as spot-check references before any node earns the trusted tier" },
  { key: "checkRate", flag: "--check-rate", arg: "<share>", env: "TESSERA_CHECK_RATE", default: "(by tier: 0.2 probation, 0.05 normal, 0.02 trusted, 1 suspect)", description: "the share of delivered answers spot-checked, for every node (an audit, a test)" },
  { key: "canaryIntervalS", flag: "--canary-interval", arg: "<s>", env: "TESSERA_CANARY_INTERVAL", default: "3600", description: "mean seconds between the checked canary jobs the coordinator sends each node (0: none)" },
  { key: "rateLimitPerMinute", flag: "--rate-limit", arg: "<n>", env: "TESSERA_RATE_LIMIT", default: "600", description: "requests per minute per API key or open client" },
  { key: "jobTimeoutS", flag: "--job-timeout", arg: "<s>", env: "TESSERA_JOB_TIMEOUT", default: "300", description: "seconds before a job fails with `timeout`" },
  { key: "pendingTimeoutS", flag: "--queue-timeout", arg: "<s>", env: "TESSERA_QUEUE_TIMEOUT", default: "60", description: "seconds a job may wait for a free node before `no_capacity`" },
  { key: "acceptTimeoutS", flag: "--accept-timeout", arg: "<s>", env: "TESSERA_ACCEPT_TIMEOUT", default: "5", description: "seconds a node has to accept a pushed job" },
  { key: "firstTokenTimeoutS", flag: "--first-token-timeout", arg: "<s>", env: "TESSERA_FIRST_TOKEN_TIMEOUT", default: "30", description: "least seconds a node that accepted a job has to send its first token before the job moves on (longer for slow nodes and long prompts)" },
  { key: "stallTimeoutS", flag: "--stall-timeout", arg: "<s>", env: "TESSERA_STALL_TIMEOUT", default: "15", description: "least seconds a node may go silent between tokens before the job moves on (longer for slow nodes)" },
  { key: "resultTtlS", flag: "--result-ttl", arg: "<s>", env: "TESSERA_RESULT_TTL", default: "3600", description: "seconds prompts and outputs are kept; then only hashes and counts" },
  { key: "heartbeatIntervalS", flag: "--heartbeat-interval", arg: "<s>", env: "TESSERA_HEARTBEAT_INTERVAL", default: "30", description: "heartbeat interval nodes are told to use" },
  { key: "offlineAfterS", flag: "--offline-after", arg: "<s>", env: "TESSERA_OFFLINE_AFTER", default: "90", description: "seconds without a heartbeat before a node is asked (a ping on its session) and, unanswered for 2 s, offline" },
  { key: "shardReplicas", flag: "--shard-replicas", arg: "<n>", env: "TESSERA_SHARD_REPLICAS", default: "2", description: "copies of every layer span of a sharded model placed up front" },
  { key: "ledger", flag: "--ledger", arg: "<on|off>", env: "TESSERA_LEDGER", default: "on", description: "on: escrow, charges, signed receipts and earnings; off: nothing is charged or recorded" },
  { key: "pricesFile", flag: "--prices", arg: "<file>", env: "TESSERA_PRICES", default: "(every model free)", description: "JSON price table: micro-USDC per 1K input/output tokens per model or size class, and reward rates (docs/billing.md)" },
  { key: "feeBps", flag: "--fee", arg: "<share>", env: "TESSERA_FEE", default: "0.15", description: "the platform's share of what clients pay (0 to 1)" },
  { key: "holdS", flag: "--hold", arg: "<duration>", env: "TESSERA_HOLD", default: "7d", description: "how long earnings are held (the dispute window) before payout, e.g. 7d or 3600s" },
  { key: "payoutSchedule", flag: "--payout-schedule", arg: "<when>", env: "TESSERA_PAYOUT_SCHEDULE", default: "daily", description: "when auto-payouts run: hourly, daily, weekly or off" },
  { key: "payoutThreshold", flag: "--payout-threshold", arg: "<usdc>", env: "TESSERA_PAYOUT_THRESHOLD", default: "(the chain's minimum)", description: "USDC an operator's available earnings must reach for an auto-payout" },
  { key: "chainRpc", flag: "--chain-rpc", arg: "<chain=url...>", env: "TESSERA_CHAIN_RPC", default: "", description: "JSON-RPC URL per payout chain, e.g. base=https://mainnet.base.org (comma-separated)" },
  { key: "vaults", flag: "--vault", arg: "<chain=address...>", env: "TESSERA_VAULTS", default: "", description: "payout vault address per chain, e.g. base=0x… (from `tessera coordinator settlement deploy`)" },
  { key: "payerKeyFile", flag: "--payer-key-file", arg: "<file>", env: "TESSERA_PAYER_KEY_FILE", default: "", description: "file with the payer's private key (0x + 64 hex, mode 0600)" },
  { key: "confirmations", flag: "--confirmations", arg: "<n>", env: "TESSERA_CONFIRMATIONS", default: "2", description: "blocks a settlement must be buried under before it counts as paid" },
  { key: "secureCookies", flag: "--secure-cookies", arg: "<when>", env: "TESSERA_SECURE_COOKIES", default: "auto", description: "dashboard cookies Secure: auto (when TLS reaches the coordinator itself) or always (behind a TLS-terminating proxy)" },
  { key: "busUrl", flag: "--bus", arg: "<url>", env: "TESSERA_BUS", default: "(none: this coordinator runs alone)", description: "nats://host:port of the NATS server replicas share, so that every replica sees every node and routes to it (nats://user:password@host:port or nats://token@host:port for a server that asks for credentials, percent-encoded; tls://… for one that requires TLS; prefer the env var for a secret); needs --db postgres://…" },
  { key: "replicaId", flag: "--replica-id", arg: "<id>", env: "TESSERA_REPLICA_ID", default: "(generated once, kept in <data dir>/replica-id)", description: "this replica's id among coordinators sharing one database: 1-40 of a-z, 0-9 and -, starting with a letter or digit" },
  { key: "logLevel", flag: "--log-level", arg: "<level>", env: "TESSERA_LOG_LEVEL", default: "info", description: "trace, debug, info, warn, error or silent" },
  { key: "logFormat", flag: "--log-format", arg: "<format>", env: "TESSERA_LOG_FORMAT", default: "auto", description: "auto (readable on a terminal, JSON otherwise), pretty or json" },
  { key: "modelAliases", flag: "--alias", arg: "<alias=model...>", env: "TESSERA_MODEL_ALIASES", default: "", description: "model aliases, e.g. gpt-4o-mini=tessera-demo" },
];

export type CoordinatorFlags = Partial<Record<keyof CoordinatorConfig, string | boolean | undefined>>;

export function defaultDataDir(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_DATA_HOME || join(homedir(), ".local", "share");
  return join(base, "tessera");
}

export function loadCoordinatorConfig(flags: CoordinatorFlags = {}, env: NodeJS.ProcessEnv = process.env): CoordinatorConfig {
  const raw = (spec: SettingSpec): string | boolean | undefined => flags[spec.key] ?? env[spec.env];
  const spec = (key: keyof CoordinatorConfig) => COORDINATOR_SETTINGS.find((s) => s.key === key)!;
  const num = (key: keyof CoordinatorConfig, min: number, max: number): number => {
    const s = spec(key);
    const value = raw(s) ?? s.default;
    const n = Number(value);
    if (!Number.isFinite(n) || n < min || n > max) {
      throw new TesseraError("bad_request", `${s.flag} (${s.env}) must be a number from ${min} to ${max}, got "${String(value)}"`);
    }
    return n;
  };
  const bool = (key: keyof CoordinatorConfig): boolean => {
    const value = raw(spec(key));
    if (typeof value === "boolean") return value;
    if (value === undefined || value === "") return false;
    if (["1", "true", "yes"].includes(value.toLowerCase())) return true;
    if (["0", "false", "no"].includes(value.toLowerCase())) return false;
    throw new TesseraError("bad_request", `${spec(key).flag} (${spec(key).env}) must be true or false, got "${value}"`);
  };
  // An empty variable (`TESSERA_DB=`) means unset, as for every other setting.
  const dbUrl = raw(spec("dbUrl")) || undefined;
  if (dbUrl !== undefined && (typeof dbUrl !== "string" || !/^postgres(ql)?:\/\//.test(dbUrl))) {
    throw new TesseraError("bad_request", `--db (TESSERA_DB) must be a postgres:// URL, got "${hideCredentials(String(dbUrl))}"`);
  }
  const dataDir = raw(spec("dataDir"));
  const open = bool("open");
  return {
    host: String(raw(spec("host")) ?? "127.0.0.1"),
    port: num("port", 0, 65535),
    dataDir: typeof dataDir === "string" && dataDir !== "" ? dataDir : defaultDataDir(env),
    dbUrl: dbUrl as string | undefined,
    open,
    admission: admissionMode(raw(spec("admission")), open),
    referenceNodes: referenceKeys(String(raw(spec("referenceNodes")) ?? "")),
    canaryIntervalS: num("canaryIntervalS", 0, 30 * 86_400),
    checkRate: raw(spec("checkRate")) === undefined || raw(spec("checkRate")) === "" ? undefined : num("checkRate", 0, 1),
    rateLimitPerMinute: num("rateLimitPerMinute", 1, 1_000_000),
    jobTimeoutS: num("jobTimeoutS", 1, 86_400),
    pendingTimeoutS: num("pendingTimeoutS", 0, 86_400),
    acceptTimeoutS: num("acceptTimeoutS", 0.1, 600),
    firstTokenTimeoutS: num("firstTokenTimeoutS", 0.1, 86_400),
    stallTimeoutS: num("stallTimeoutS", 0.1, 86_400),
    resultTtlS: num("resultTtlS", 1, 365 * 86_400),
    heartbeatIntervalS: num("heartbeatIntervalS", 1, 3600),
    offlineAfterS: num("offlineAfterS", 1, 86_400),
    modelAliases: parseAliases(String(raw(spec("modelAliases")) ?? "")),
    logLevel: logLevel(String(raw(spec("logLevel")) ?? "info")),
    logFormat: logFormat(String(raw(spec("logFormat")) || "auto")),
    shardReplicas: num("shardReplicas", 1, 16),
    ledger: onOff(raw(spec("ledger")), "--ledger (TESSERA_LEDGER)"),
    pricesFile: nonEmpty(raw(spec("pricesFile"))),
    feeBps: Math.round(num("feeBps", 0, 1) * 10_000),
    holdS: parseDuration(String(raw(spec("holdS")) ?? "7d"), "--hold (TESSERA_HOLD)", { min: 0, max: 365 * 86_400 }),
    payoutSchedule: payoutSchedule(raw(spec("payoutSchedule"))),
    payoutThreshold: raw(spec("payoutThreshold")) === undefined || raw(spec("payoutThreshold")) === "" ? 0 : Math.round(num("payoutThreshold", 0, 1e9) * 1e6),
    chainRpc: perChain(String(raw(spec("chainRpc")) ?? ""), "--chain-rpc (TESSERA_CHAIN_RPC)", /^https?:\/\/\S+$/, "an http(s) URL"),
    vaults: perChain(String(raw(spec("vaults")) ?? ""), "--vault (TESSERA_VAULTS)", /^0x[0-9a-fA-F]{40}$/, "a 0x address"),
    payerKeyFile: nonEmpty(raw(spec("payerKeyFile"))),
    confirmations: num("confirmations", 1, 1000),
    secureCookies: secureCookies(raw(spec("secureCookies"))),
    replicaId: replicaId(raw(spec("replicaId"))),
    busUrl: busUrl(raw(spec("busUrl")), dbUrl as string | undefined),
  };
}

const PAYOUT_CHAIN_NAMES = ["base", "ethereum", "polygon", "arbitrum"] as const;

function nonEmpty(value: string | boolean | undefined): string | undefined {
  return typeof value === "string" && value !== "" ? value : undefined;
}

function onOff(value: string | boolean | undefined, name: string): boolean {
  if (value === undefined || value === "" || value === true) return true;
  if (value === false) return false;
  if (["on", "true", "1", "yes"].includes(value.toLowerCase())) return true;
  if (["off", "false", "0", "no"].includes(value.toLowerCase())) return false;
  throw new TesseraError("bad_request", `${name} must be on or off, got "${value}"`);
}

/** A replica id: short, lowercase, safe in logs, file names, metric labels and (later) bus subjects. */
export const REPLICA_ID = /^[a-z0-9][a-z0-9-]{0,39}$/;

function replicaId(value: string | boolean | undefined): string | undefined {
  if (value === undefined || value === "") return undefined;
  if (typeof value !== "string" || !REPLICA_ID.test(value)) {
    throw new TesseraError("bad_request", `--replica-id (TESSERA_REPLICA_ID) must be 1 to 40 characters of a-z, 0-9 and -, starting with a letter or digit, got "${String(value)}"`);
  }
  return value;
}

/** A NATS server address with its credentials if any (bus/bus-url.ts); only beside a shared PostgreSQL database. */
function busUrl(value: string | boolean | undefined, dbUrl: string | undefined): string | undefined {
  if (value === undefined || value === "") return undefined;
  if (typeof value !== "string") throw new TesseraError("bad_request", "--bus (TESSERA_BUS) needs a value: nats://[user:password@]host:port");
  parseBusUrl(value);
  if (dbUrl === undefined) throw new TesseraError("bad_request", "--bus (TESSERA_BUS) needs --db postgres://…: replicas share one PostgreSQL database, and SQLite is one process's");
  return value;
}

function secureCookies(value: string | boolean | undefined): CoordinatorConfig["secureCookies"] {
  if (value === undefined || value === "") return "auto";
  if (value === "auto" || value === "always") return value;
  throw new TesseraError("bad_request", `--secure-cookies (TESSERA_SECURE_COOKIES) must be auto or always, got "${String(value)}"`);
}

function payoutSchedule(value: string | boolean | undefined): CoordinatorConfig["payoutSchedule"] {
  if (value === undefined || value === "") return "daily";
  const schedule = (["hourly", "daily", "weekly", "off"] as const).find((s) => s === value);
  if (!schedule) throw new TesseraError("bad_request", `--payout-schedule (TESSERA_PAYOUT_SCHEDULE) must be hourly, daily, weekly or off, got "${String(value)}"`);
  return schedule;
}

/** `chain=value,chain2=value2` for the payout chains (settlement/chains.ts names them). */
function perChain(text: string, name: string, pattern: RegExp, what: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of text.split(",").map((s) => s.trim()).filter(Boolean)) {
    const at = pair.indexOf("=");
    const chain = pair.slice(0, at).trim();
    const value = pair.slice(at + 1).trim();
    if (at < 0 || !PAYOUT_CHAIN_NAMES.some((c) => c === chain)) throw new TesseraError("bad_request", `${name} entries look like chain=value with chain one of ${PAYOUT_CHAIN_NAMES.join(", ")}, got "${pair}"`);
    if (!pattern.test(value)) throw new TesseraError("bad_request", `${name}: ${chain} needs ${what}, got "${value}"`);
    out[chain] = value;
  }
  return out;
}

function referenceKeys(text: string): string[] {
  return text
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean)
    .map((key) => {
      const hex = parsePublicKey(key);
      if (!hex) throw new TesseraError("bad_request", `--reference-node (TESSERA_REFERENCE_NODES) takes node or operator keys (npub1… or 64 hex), got "${key}"`);
      return hex;
    });
}

function admissionMode(value: string | boolean | undefined, open: boolean): AdmissionMode {
  if (value === undefined || value === "") return open ? "open" : "token";
  const mode = ADMISSION_MODES.find((m) => m === value);
  if (!mode) throw new TesseraError("bad_request", `--admission (TESSERA_ADMISSION) must be one of ${ADMISSION_MODES.join(", ")}, got "${String(value)}"`);
  return mode;
}

const LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "silent"] as const;

function logLevel(value: string): CoordinatorConfig["logLevel"] {
  const level = LOG_LEVELS.find((l) => l === value);
  if (!level) throw new TesseraError("bad_request", `--log-level (TESSERA_LOG_LEVEL) must be one of ${LOG_LEVELS.join(", ")}, got "${value}"`);
  return level;
}

function logFormat(value: string): LogFormatSetting {
  const format = LOG_FORMATS.find((f) => f === value);
  if (!format) throw new TesseraError("bad_request", `--log-format (TESSERA_LOG_FORMAT) must be one of ${LOG_FORMATS.join(", ")}, got "${value}"`);
  return format;
}

function parseAliases(text: string): Record<string, string> {
  const aliases: Record<string, string> = {};
  for (const pair of text.split(",").map((s) => s.trim()).filter(Boolean)) {
    const [alias, model] = pair.split("=").map((s) => s.trim());
    if (!alias || !model) throw new TesseraError("bad_request", `--alias (TESSERA_MODEL_ALIASES) entries look like alias=model, got "${pair}"`);
    aliases[alias] = model;
  }
  return aliases;
}

export function settingsHelp(): string {
  return COORDINATOR_SETTINGS.map((s) => `  ${s.flag.padEnd(22)} ${s.env.padEnd(28)} ${s.description} (default: ${s.default})`).join("\n");
}
