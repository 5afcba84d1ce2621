import { readFileSync, statSync } from "node:fs";
import { homedir } from "node:os";
import { resolve } from "node:path";
import { parse as parseToml } from "smol-toml";
import { LOG_FORMATS, type LogFormatSetting, TesseraError } from "@tessera/protocol";
import { BACKEND_KINDS, BACKEND_SETTINGS, normalizeHost, type BackendKindSetting } from "./backends/backend-settings.js";
import type { VllmInstance } from "./backends/vllm/route-by-model.js";
import { resolveNodePaths, type NodePaths } from "./paths.js";
import { STAGE_BACKENDS, type StageBackend } from "./stage/stage-backend.js";
import { type IdleSettings, type LimitSettings, type SectionSource, SECTION_SETTINGS, loadSectionSettings, sectionSettingId, sectionSettingsHelp } from "./idle/idle-settings.js";

/**
 * The node daemon's configuration: ONE settings table, and the only reader of `process.env` in this package.
 * Each setting has a name (also its key in node.toml), an env var, a flag, a default and a description; the same
 * table prints in `--help`. Precedence: flag > env > config file > default. Every error names the flag and the env
 * var, and carries the stable code `bad_request` (or `not_found` for a missing config file).
 */

/** The backend kinds and their settings come from the backends' own table (one definition each). */
export type BackendKind = BackendKindSetting;

export { IDLE_STATE_FILE_NAME, SECTION_SETTINGS, type IdleSettings, type LimitSettings } from "./idle/idle-settings.js";
/** The daemon's record of a refused span offer, which `tessera status --node` shows (stage-host/offer-refusal.ts). */
export { STAGE_OFFER_REFUSAL_FILE_NAME, readStageOfferRefusal, type StageOfferRefusal } from "./stage-host/offer-refusal.js";

export const LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "silent"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface NodeSettings {
  coordinator_url: string;
  /** Other replicas of the same coordinator, tried in order after `coordinator_url` when the one in use is unreachable. */
  coordinator_replicas: string[];
  backend: BackendKind;
  model_path: string;
  served_models: string[];
  embedding_models: string[];
  stage_model: string;
  stage_memory_mb: number;
  stage_threads: number;
  stage_backend: StageBackend;
  ollama_host: string;
  ollama_keep_alive: string;
  vllm_host: string;
  vllm_instances: VllmInstance[];
  sglang_host: string;
  max_host: string;
  llama_server_host: string;
  openai_compatible_host: string;
  backend_api_key: string;
  reference_scoring: boolean;
  score_eos_token_ids: number[];
  probe_timeout_ms: number;
  max_concurrency: number;
  heartbeat_interval_s: number;
  shutdown_grace_s: number;
  log_file: string;
  log_max_mb: number;
  log_keep: number;
  log_level: LogLevel;
  log_format: LogFormatSetting;
  payout_address: string;
}
export type SettingName = keyof NodeSettings;
export type SettingSource = "flag" | "env" | "file" | "default";

export interface SettingSpec<K extends SettingName = SettingName> {
  name: K;
  env: string;
  /** The long flag, e.g. `--max-concurrency`. */
  flag: string;
  /** Commander's argument placeholder, e.g. `<n>`. */
  arg: string;
  /** The default as shown to users; `log_file` and `model_path` get theirs from the node's paths. */
  defaultText: string;
  description: string;
  parse(raw: unknown): NodeSettings[K];
}

/** Thrown by a setting's parser; turned into a TesseraError naming the source, flag and env var. */
class InvalidValue extends Error {}

function text(raw: unknown): string {
  if (typeof raw === "number" || typeof raw === "boolean") return String(raw);
  if (typeof raw !== "string") throw new InvalidValue("must be a string");
  return raw.trim();
}

function url(raw: unknown): string {
  let value = text(raw);
  if (value === "") return "";
  // OLLAMA_HOST and friends are often written without a scheme (`127.0.0.1:11434`).
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(value)) value = `http://${value}`;
  let parsed: URL;
  try {
    parsed = new URL(value);
  } catch {
    throw new InvalidValue("must be a URL like http://127.0.0.1:7337");
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") throw new InvalidValue("must be an http(s) URL");
  return value.replace(/\/+$/, "");
}

function number(min: number, max: number, integer: boolean) {
  return (raw: unknown): number => {
    const value = typeof raw === "number" ? raw : typeof raw === "string" && raw.trim() !== "" ? Number(raw) : NaN;
    const kind = integer ? "an integer" : "a number";
    if (!Number.isFinite(value) || (integer && !Number.isInteger(value)) || value < min || value > max) {
      throw new InvalidValue(`must be ${kind} from ${min} to ${max}`);
    }
    return value;
  };
}

function oneOf<T extends string>(values: readonly T[]) {
  return (raw: unknown): T => {
    const value = text(raw);
    if (!(values as readonly string[]).includes(value)) throw new InvalidValue(`must be one of ${values.join(", ")}`);
    return value as T;
  };
}

function list(raw: unknown): string[] {
  const names = listItems(raw);
  for (const name of names) if (name.length > 256) throw new InvalidValue("model names are at most 256 characters");
  return names;
}

/** Coordinator URLs, in order, each read as `url` reads one. */
function urlList(raw: unknown): string[] {
  const urls = listItems(raw).map(url);
  return [...new Set(urls)];
}

/** The items of a list setting, trimmed, empty ones dropped, duplicates dropped. */
function listItems(raw: unknown): string[] {
  let value = raw;
  // Env and flags take `a,b`; a JSON/TOML-style `["a","b"]` is accepted too.
  if (typeof value === "string" && value.trim().startsWith("[")) {
    try {
      value = JSON.parse(value);
    } catch {
      throw new InvalidValue('must be a comma-separated list or ["a", "b"]');
    }
    if (!Array.isArray(value)) throw new InvalidValue("must be a list");
  }
  const items = Array.isArray(value) ? value.map(text) : text(value).split(",");
  return [...new Set(items.map((s) => s.trim()).filter((s) => s !== ""))];
}

/** A switch: TOML true/false, or on/off, true/false, 1/0, yes/no from a flag or env var. */
function onOff(raw: unknown): boolean {
  if (typeof raw === "boolean") return raw;
  const value = text(raw).trim().toLowerCase();
  if (["true", "on", "1", "yes"].includes(value)) return true;
  if (["false", "off", "0", "no", ""].includes(value)) return false;
  throw new InvalidValue("must be true or false (on/off, 1/0)");
}

/** Token ids: a TOML array of integers, or comma-separated integers from a flag or env var. */
function tokenIds(raw: unknown): number[] {
  const items = Array.isArray(raw) ? raw : text(raw).split(",").map((s) => s.trim()).filter((s) => s !== "");
  return items.map((item) => {
    const value = typeof item === "number" ? item : Number(String(item).trim());
    if (!Number.isInteger(value) || value < 0 || value >= 2 ** 31) throw new InvalidValue("must be token ids: non-negative integers, comma-separated");
    return value;
  });
}

function spec<K extends SettingName>(s: SettingSpec<K>): SettingSpec<K> {
  return s;
}

/** Hosts as the backends' `normalizeHost` reads them (Ollama's spellings included); kept as written. */
function host(defaultPort: number) {
  return (raw: unknown): string => {
    const value = text(raw);
    try {
      normalizeHost(value, defaultPort);
    } catch {
      throw new InvalidValue("must be a host like 127.0.0.1:8000 or http://gpu-box:8000");
    }
    return value;
  };
}

/** `[{host, model}]`: a TOML array of tables in node.toml, a JSON array in env or flag. */
function vllmInstances(raw: unknown): VllmInstance[] {
  let value = raw;
  if (typeof value === "string") {
    if (value.trim() === "") return [];
    try {
      value = JSON.parse(value);
    } catch {
      throw new InvalidValue('must be a JSON array like [{"host":"http://127.0.0.1:8001","model":"m"}]');
    }
  }
  if (!Array.isArray(value)) throw new InvalidValue("must be an array of {host, model}");
  return value.map((item) => {
    const entry = item as { host?: unknown; model?: unknown };
    if (typeof item !== "object" || item === null || typeof entry.host !== "string") {
      throw new InvalidValue("each instance needs a host string");
    }
    const hostValue = host(8000)(entry.host);
    if (entry.model === undefined) return { host: hostValue };
    if (typeof entry.model !== "string" || entry.model === "") throw new InvalidValue("an instance's model must be a string");
    return { host: hostValue, model: entry.model };
  });
}

/** A setting whose env var, default and description live in the backends' BACKEND_SETTINGS table. */
function backendSpec<K extends SettingName>(
  name: K,
  parse: (raw: unknown) => NodeSettings[K],
  arg = "<value>",
): SettingSpec<K> {
  const row = BACKEND_SETTINGS.find((r) => r.key === name);
  if (!row) throw new Error(`backend setting ${name} is missing from BACKEND_SETTINGS`);
  return {
    name,
    env: row.env,
    flag: `--${name.replace(/_/g, "-")}`,
    arg,
    defaultText: row.default,
    description: row.description.replace(/\.$/, ""),
    parse,
  };
}

export const NODE_SETTINGS = [
  spec({
    name: "coordinator_url", env: "TESSERA_COORDINATOR_URL", flag: "--coordinator", arg: "<url>",
    defaultText: "http://127.0.0.1:7337", description: "Coordinator this node joins",
    parse: (raw) => {
      const value = url(raw);
      if (value === "") throw new InvalidValue("must not be empty");
      return value;
    },
  }),
  spec({
    name: "coordinator_replicas", env: "TESSERA_COORDINATOR_REPLICAS", flag: "--coordinator-replicas", arg: "<url,url>", defaultText: "[]",
    description:
      "Other replicas of the same coordinator (one network on a shared database), tried in order with jitter when the one in use is unreachable; the node registers with the one it moves to",
    parse: urlList,
  }),
  backendSpec("backend", oneOf(BACKEND_KINDS), "<kind>"),
  spec({
    name: "model_path", env: "TESSERA_MODEL_PATH", flag: "--model", arg: "<path.gguf>", defaultText: "",
    description: "GGUF file the embedded backend serves",
    parse: text,
  }),
  spec({
    name: "served_models", env: "TESSERA_SERVED_MODELS", flag: "--served-models", arg: "<a,b>", defaultText: "[]",
    description: "Models this node advertises (empty: every model the backend has)", parse: list,
  }),
  spec({
    name: "embedding_models", env: "TESSERA_EMBEDDING_MODELS", flag: "--embedding-models", arg: "<a,b>", defaultText: "[]",
    description: "Models an HTTP backend serves as embedding models, offered for /v1/embeddings only (the embedded engine and Ollama's BERT-family models are detected)",
    parse: list,
  }),
  spec({
    name: "stage_model", env: "TESSERA_STAGE_MODEL", flag: "--stage-model", arg: "<path.gguf>", defaultText: "",
    description: "GGUF file this node offers to hold layer spans of (sharded serving)", parse: text,
  }),
  spec({
    name: "stage_memory_mb", env: "TESSERA_STAGE_MEMORY_MB", flag: "--stage-memory", arg: "<mb>", defaultText: "0",
    description: "Memory offered for layer spans, MB (0: the machine's free memory)", parse: number(0, 1e9, false),
  }),
  spec({
    name: "stage_threads", env: "TESSERA_STAGE_THREADS", flag: "--stage-threads", arg: "<n>", defaultText: "1",
    description: "CPU threads the layer spans' matrix products use", parse: number(1, 256, true),
  }),
  spec({
    name: "stage_backend", env: "TESSERA_STAGE_BACKEND", flag: "--stage-backend", arg: `<${STAGE_BACKENDS.join("|")}>`, defaultText: "wasm",
    description:
      "Runtime of the layer spans: wasm (WebAssembly), ggml-cpu (ggml's CPU backend), vulkan / cuda / metal (ggml's GPU backend, from the build `tessera gpu setup` installs), " +
      "auto (the first GPU backend that finds a GPU, else ggml-cpu when it passes its self-check, else wasm)",
    parse: oneOf(STAGE_BACKENDS),
  }),
  backendSpec("ollama_host", host(11434)),
  backendSpec("ollama_keep_alive", text),
  backendSpec("vllm_host", host(8000)),
  backendSpec("vllm_instances", vllmInstances, "<json>"),
  backendSpec("sglang_host", host(30000)),
  backendSpec("max_host", host(8080)),
  backendSpec("llama_server_host", host(8080)),
  backendSpec("openai_compatible_host", (raw) => (text(raw) === "" ? "" : host(8000)(raw))),
  backendSpec("backend_api_key", text),
  backendSpec("reference_scoring", onOff, "<on|off>"),
  backendSpec("score_eos_token_ids", tokenIds, "<ids>"),
  backendSpec("probe_timeout_ms", number(1, 600_000, true), "<ms>"),
  spec({
    name: "max_concurrency", env: "TESSERA_MAX_CONCURRENCY", flag: "--max-concurrency", arg: "<n>",
    defaultText: "4", description: "Jobs run at once; more are rejected", parse: number(1, 1024, true),
  }),
  spec({
    name: "heartbeat_interval_s", env: "TESSERA_HEARTBEAT_INTERVAL_S", flag: "--heartbeat-interval", arg: "<s>",
    defaultText: "30", description: "Seconds between heartbeats (unset: the coordinator's value)",
    parse: number(0.05, 3600, false),
  }),
  spec({
    name: "shutdown_grace_s", env: "TESSERA_SHUTDOWN_GRACE_S", flag: "--shutdown-grace", arg: "<s>",
    defaultText: "30", description: "On SIGTERM, seconds in-flight jobs get to finish", parse: number(0, 3600, false),
  }),
  spec({
    name: "log_file", env: "TESSERA_LOG_FILE", flag: "--log-file", arg: "<path>", defaultText: "<data>/logs/node.log",
    description: "Log file (JSON records; `tessera logs` shows them readable)",
    parse: (raw) => {
      const value = text(raw);
      if (value === "") throw new InvalidValue("must not be empty");
      return value;
    },
  }),
  spec({
    name: "log_max_mb", env: "TESSERA_LOG_MAX_MB", flag: "--log-max-mb", arg: "<mb>", defaultText: "10",
    description: "Size at which the log file is rotated (node.log → node.log.1 → …)", parse: number(1, 10_240, false),
  }),
  spec({
    name: "log_keep", env: "TESSERA_LOG_KEEP", flag: "--log-keep", arg: "<n>", defaultText: "3",
    description: "Rotated log files kept beside the current one (0: none)", parse: number(0, 100, true),
  }),
  spec({
    name: "log_level", env: "TESSERA_LOG_LEVEL", flag: "--log-level", arg: "<level>", defaultText: "info",
    description: `Log level: ${LOG_LEVELS.join("|")}`, parse: oneOf(LOG_LEVELS),
  }),
  spec({
    name: "log_format", env: "TESSERA_LOG_FORMAT", flag: "--log-format", arg: "<format>", defaultText: "auto",
    description: "Log lines on stdout: auto (readable on a terminal, JSON otherwise), pretty or json",
    parse: oneOf(LOG_FORMATS),
  }),
  spec({
    name: "payout_address", env: "TESSERA_PAYOUT_ADDRESS", flag: "--payout", arg: "<0x…>", defaultText: "",
    description: "EVM address (0x + 40 hex) your earnings are paid to; `tessera start --payout` stores it in node.toml and a self-operated node sets it with the coordinator (docs/earnings.md)",
    parse: (raw) => {
      const value = text(raw);
      if (value !== "" && !/^0x[0-9a-fA-F]{40}$/.test(value)) throw new InvalidValue("must be an EVM address: 0x and 40 hex digits");
      return value;
    },
  }),
] as const satisfies readonly SettingSpec[];

const SETTING_BY_NAME = new Map<string, SettingSpec>(NODE_SETTINGS.map((s) => [s.name, s as SettingSpec]));

const PATH_SETTINGS = new Set<string>(["model_path", "stage_model", "log_file"]);

export const HOME_FLAG = "--home";
export const HOME_ENV = "TESSERA_HOME";

export interface NodeConfig extends NodeSettings {
  paths: NodePaths;
  /** Where each setting's value came from. */
  sources: Record<SettingName, SettingSource>;
  /** node.toml's `[idle]` section (idle/idle-settings.ts). */
  idle: IdleSettings;
  /** node.toml's `[limits]` section. */
  limits: LimitSettings;
  /** Where each `section.key` came from. */
  sectionSources: Record<string, SectionSource>;
}

/** Top-level settings by name; `[idle]`/`[limits]` ones as `"idle.enlist_after"` and so on. */
export type SettingFlags = Partial<Record<SettingName, unknown>> & Partial<Record<string, unknown>>;

export interface LoadConfigOptions {
  /** `--home`; falls back to TESSERA_HOME, then XDG dirs. */
  home?: string;
  flags?: SettingFlags;
  /** Defaults to process.env: this module is the one place that reads it. */
  env?: Record<string, string | undefined>;
  /** When true (start, register) a missing node.toml is an error telling the user to run `tessera init`. */
  requireConfigFile?: boolean;
  /**
   * How the user runs `tessera` from their shell (`npx tessera` in a checkout, …), so the `init` that error names runs
   * as printed; the CLI passes its own. Default `tessera`.
   */
  command?: string;
}

function settingError(s: SettingSpec, source: SettingSource, raw: unknown, reason: string): TesseraError {
  const where = source === "flag" ? `flag ${s.flag}` : source === "env" ? `env ${s.env}` : `node.toml key ${s.name}`;
  return new TesseraError(
    "bad_request",
    `invalid ${s.name} ${JSON.stringify(raw)} (from ${where}): ${reason}; set it with ${s.flag}, ${s.env} or ` +
      `\`${s.name}\` in node.toml`,
  );
}

/** Resolves the home dir and the node's paths; rejects a --home that exists but is not a directory. */
export function resolveHome(home: string | undefined, env: Record<string, string | undefined> = process.env): NodePaths {
  const chosen = home ?? (env[HOME_ENV] ? env[HOME_ENV] : undefined);
  const source = home !== undefined ? `flag ${HOME_FLAG}` : `env ${HOME_ENV}`;
  if (chosen !== undefined) {
    if (chosen.trim() === "") throw new TesseraError("bad_request", `${HOME_FLAG}/${HOME_ENV} must not be empty`);
    const dir = resolve(chosen);
    let isDir: boolean | undefined;
    try {
      isDir = statSync(dir).isDirectory();
    } catch {
      isDir = undefined; // does not exist yet: `tessera init` creates it
    }
    if (isDir === false) {
      throw new TesseraError("bad_request", `home ${dir} (from ${source}) exists and is not a directory`);
    }
    return resolveNodePaths(dir, env, homedir());
  }
  return resolveNodePaths(undefined, env, homedir());
}

/** Reads node.toml as a plain table; undefined when it does not exist. */
export function readConfigFile(path: string): Record<string, unknown> | undefined {
  let source: string;
  try {
    source = readFileSync(path, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return undefined;
    if (code === "EISDIR") throw new TesseraError("bad_request", `config ${path} is a directory, not a file`);
    throw new TesseraError("bad_request", `cannot read config ${path}: ${code ?? String(err)}`, { cause: err });
  }
  try {
    return parseToml(source) as Record<string, unknown>;
  } catch (err) {
    const message = err instanceof Error ? err.message.split("\n")[0] : String(err);
    throw new TesseraError("bad_request", `config ${path} is not valid TOML: ${message}`, { cause: err });
  }
}

export function loadNodeConfig(options: LoadConfigOptions = {}): NodeConfig {
  const env = options.env ?? process.env;
  const paths = resolveHome(options.home, env);
  const file = readConfigFile(paths.configFile);
  if (file === undefined && options.requireConfigFile) {
    const homeHint = paths.home !== undefined ? ` --home ${paths.home}` : "";
    throw new TesseraError("not_found", `no node config at ${paths.configFile}: run \`${options.command ?? "tessera"} init${homeHint}\` first`);
  }
  for (const key of Object.keys(file ?? {})) {
    if (!SETTING_BY_NAME.has(key) && key !== "idle" && key !== "limits") {
      throw new TesseraError(
        "bad_request",
        `unknown key ${JSON.stringify(key)} in ${paths.configFile}; known keys: ${[...SETTING_BY_NAME.keys()].join(", ")}`,
      );
    }
  }
  const flags = options.flags ?? {};
  const values: Record<string, unknown> = {};
  const sources = {} as Record<SettingName, SettingSource>;
  for (const s of NODE_SETTINGS as readonly SettingSpec[]) {
    const candidates: Array<[SettingSource, unknown]> = [
      ["flag", flags[s.name]],
      ["env", env[s.env] === "" ? undefined : env[s.env]],
      ["file", file?.[s.name]],
    ];
    const found = candidates.find(([, raw]) => raw !== undefined);
    if (found) {
      const [source, raw] = found;
      try {
        values[s.name] = s.parse(raw);
      } catch (err) {
        if (err instanceof InvalidValue) throw settingError(s, source, raw, err.message);
        throw err;
      }
      sources[s.name] = source;
      // Relative paths: from node.toml they are relative to its directory, otherwise to the working directory.
      if (PATH_SETTINGS.has(s.name) && values[s.name] !== "") {
        values[s.name] = resolve(source === "file" ? paths.configDir : ".", values[s.name] as string);
      }
    } else {
      values[s.name] = s.name === "log_file" ? paths.defaultLogFile : s.parse(s.defaultText);
      sources[s.name] = "default";
    }
  }
  const sections = loadSectionSettings(file, env, flags, paths.configFile);
  if (sections.idle.probe_file !== "") sections.idle.probe_file = resolve(sections.sources["idle.probe_file"] === "file" ? paths.configDir : ".", sections.idle.probe_file);
  return { ...(values as unknown as NodeSettings), paths, sources, idle: sections.idle, limits: sections.limits, sectionSources: sections.sources };
}

/** Commander turns `--max-concurrency` into `maxConcurrency`; this maps parsed options back to setting names. */
export function settingFlagsFromOptions(options: Record<string, unknown>): SettingFlags {
  const flags: SettingFlags = {};
  for (const s of NODE_SETTINGS) {
    const key = s.flag.replace(/^--/, "").replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
    if (options[key] !== undefined) flags[s.name] = options[key];
  }
  for (const s of SECTION_SETTINGS) {
    if (!s.flag) continue;
    const key = s.flag.replace(/^--/, "").replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
    if (options[key] !== undefined) flags[sectionSettingId(s)] = options[key];
  }
  return flags;
}

/** The settings table as it prints in `--help`. */
export function settingsHelp(): string {
  const rows = NODE_SETTINGS.map((s) => [s.name, `${s.flag} ${s.arg}`, s.env, s.defaultText || '""', s.description]);
  rows.unshift([HOME_FLAG.slice(2), `${HOME_FLAG} <dir>`, HOME_ENV, "XDG dirs", "One dir for config, keys, logs, data"]);
  rows.push(...sectionSettingsHelp());
  const header = ["setting (node.toml)", "flag", "env", "default", "description"];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((c, i) => (i < r.length - 1 ? c.padEnd(widths[i]!) : c)).join("  ");
  return [
    "Settings (precedence: flag > env > node.toml > default):",
    "  " + line(header),
    ...rows.map((r) => "  " + line(r)),
  ].join("\n");
}

export function getSettingSpec(name: SettingName): SettingSpec {
  return SETTING_BY_NAME.get(name)!;
}

/**
 * Settings for tests only, never in `--help` nor node.toml: they make a node misbehave on purpose so end-to-end tests
 * can show that checks catch it.
 *
 * - `TESSERA_TEST_STAGE_PERTURB=<r>` (r > 0): every answer of this node's layer spans is perturbed before it is
 *   handed on: hidden states get deterministic noise of r times each row's RMS, the last span's logits get noise of
 *   r times their RMS before sampling; and the node claims to compute in no time (`ms_per_layer` and each answer's
 *   compute time 0), so routing prefers it. A lying stage for the stage checks' e2e test (trust/design.md,
 *   "Checking one stage").
 */
export interface NodeTestHooks {
  stagePerturb: number;
}

export function nodeTestHooks(env: Record<string, string | undefined> = process.env): NodeTestHooks {
  const raw = env.TESSERA_TEST_STAGE_PERTURB;
  if (raw === undefined || raw === "") return { stagePerturb: 0 };
  const value = Number(raw);
  if (!(value >= 0 && Number.isFinite(value))) {
    throw new TesseraError("bad_request", `invalid TESSERA_TEST_STAGE_PERTURB ${JSON.stringify(raw)} (from env): must be a number >= 0 (tests only)`);
  }
  return { stagePerturb: value };
}
