import { TesseraError, parseDuration } from "@tessera/protocol";

/**
 * The `[idle]` and `[limits]` sections of node.toml: one table, like config.ts's top-level settings (name, env var,
 * flag where there is one, default, description, parser). config.ts reads them with the same precedence
 * (flag > env > node.toml > default) and every error names the key, the flag and the env var.
 */
export interface IdleSettings {
  /** `when-idle`: the supervisor decides; `always`: serve whenever the daemon runs (no supervisor). */
  mode: "when-idle" | "always";
  enlist_after_ms: number;
  release_on_use: boolean;
  gpu_util_floor: number;
  input_idle_threshold_ms: number;
  drain_grace_ms: number;
  poll_interval_ms: number;
  unknown_means_idle: boolean;
  probe_file: string;
  /** Not a setting: whether a display is there to read input idle time from (DISPLAY, WAYLAND_DISPLAY). */
  display: { x11: boolean; wayland: boolean };
}

export interface LimitSettings {
  max_vram_fraction: number;
  /** 0: no cap. */
  max_power_watts: number;
  pause_on_battery: boolean;
}

export type SectionName = "idle" | "limits";

/** Where the daemon writes its idle state for `tessera status --node`, inside the node's data dir. */
export const IDLE_STATE_FILE_NAME = "idle-state.json";

export interface SectionSettingSpec {
  section: SectionName;
  /** The key inside the section in node.toml. */
  key: string;
  /** The field in IdleSettings / LimitSettings (durations are stored in ms). */
  field: string;
  env: string;
  flag: string | undefined;
  arg: string;
  defaultText: string;
  description: string;
  parse(raw: unknown): unknown;
}

/** A parser's complaint; config.ts wraps it in a TesseraError that names where the value came from. */
export class InvalidSectionValue extends Error {}

function duration(min: number, max: number) {
  return (raw: unknown): number => {
    const text = typeof raw === "number" ? `${raw}s` : typeof raw === "string" ? raw.trim() : "";
    const ms = /^(\d+)ms$/.exec(text);
    if (ms) {
      const value = Number(ms[1]);
      if (value < min * 1000 || value > max * 1000) throw new InvalidSectionValue(`must be a duration from ${min}s to ${max}s`);
      return value;
    }
    try {
      return parseDuration(text, "value", { min, max }) * 1000;
    } catch {
      throw new InvalidSectionValue(`must be a duration like 90s, 2m or 500ms, from ${min}s to ${max}s`);
    }
  };
}

function fraction(min: number, max: number) {
  return (raw: unknown): number => {
    const value = typeof raw === "number" ? raw : typeof raw === "string" && raw.trim() !== "" ? Number(raw) : NaN;
    if (!Number.isFinite(value) || value < min || value > max) throw new InvalidSectionValue(`must be a number from ${min} to ${max}`);
    return value;
  };
}

function bool(raw: unknown): boolean {
  if (typeof raw === "boolean") return raw;
  const text = typeof raw === "string" ? raw.trim().toLowerCase() : String(raw);
  if (["true", "1", "yes", "on"].includes(text)) return true;
  if (["false", "0", "no", "off"].includes(text)) return false;
  throw new InvalidSectionValue("must be true or false");
}

function text(raw: unknown): string {
  if (typeof raw !== "string") throw new InvalidSectionValue("must be a string");
  return raw.trim();
}

function mode(raw: unknown): IdleSettings["mode"] {
  const value = text(raw);
  if (value !== "when-idle" && value !== "always") throw new InvalidSectionValue('must be "when-idle" or "always"');
  return value;
}

export const SECTION_SETTINGS: readonly SectionSettingSpec[] = [
  { section: "idle", key: "mode", field: "mode", env: "TESSERA_IDLE_MODE", flag: "--idle-mode", arg: "<mode>", defaultText: "when-idle",
    description: "when-idle: serve only while the machine is idle and step aside when its owner is back; always: serve whenever the daemon runs", parse: mode },
  { section: "idle", key: "enlist_after", field: "enlist_after_ms", env: "TESSERA_IDLE_AFTER", flag: "--idle-after", arg: "<duration>", defaultText: "90s",
    description: "Quiet time (no input, no other GPU use, not on battery) before the node takes work, again after each drain", parse: duration(0, 86_400) },
  { section: "idle", key: "release_on_use", field: "release_on_use", env: "TESSERA_IDLE_RELEASE_ON_USE", flag: undefined, arg: "<bool>", defaultText: "true",
    description: "When the owner is back, free the model's memory (embedded: dispose model and context; Ollama: keep_alive 0)", parse: bool },
  { section: "idle", key: "gpu_util_floor", field: "gpu_util_floor", env: "TESSERA_IDLE_GPU_UTIL_FLOOR", flag: undefined, arg: "<0..1>", defaultText: "0.05",
    description: "GPU utilisation by other processes above this counts as the owner using the machine (quiet again below half of it)", parse: fraction(0, 1) },
  { section: "idle", key: "input_idle_threshold", field: "input_idle_threshold_ms", env: "TESSERA_IDLE_INPUT_THRESHOLD", flag: undefined, arg: "<duration>", defaultText: "5s",
    description: "Keyboard or mouse input less than this long ago counts as the owner being active", parse: duration(1, 3600) },
  { section: "idle", key: "drain_grace", field: "drain_grace_ms", env: "TESSERA_IDLE_DRAIN_GRACE", flag: undefined, arg: "<duration>", defaultText: "500ms",
    description: "When the owner is back, how long in-flight jobs may finish before they are handed to other nodes", parse: duration(0, 60) },
  { section: "idle", key: "poll_interval", field: "poll_interval_ms", env: "TESSERA_IDLE_POLL_INTERVAL", flag: undefined, arg: "<duration>", defaultText: "1s",
    description: "How often the probes are read", parse: duration(0.05, 60) },
  { section: "idle", key: "unknown_means_idle", field: "unknown_means_idle", env: "TESSERA_IDLE_UNKNOWN_MEANS_IDLE", flag: undefined, arg: "<bool>", defaultText: "true",
    description: "A probe that cannot tell (a server: no display, no battery, no GPU tool) counts as idle; false: such a machine never enlists", parse: bool },
  { section: "idle", key: "probe_file", field: "probe_file", env: "TESSERA_IDLE_PROBE_FILE", flag: "--idle-probe-file", arg: "<path>", defaultText: "",
    description: "Tests only: read the probes from this JSON file instead of the machine", parse: text },
  { section: "limits", key: "max_vram_fraction", field: "max_vram_fraction", env: "TESSERA_MAX_VRAM_FRACTION", flag: "--max-vram", arg: "<0..1>", defaultText: "0.8",
    description: "Largest share of each GPU's memory the node may use", parse: (raw) => {
      const value = fraction(0, 1)(raw);
      if (value <= 0) throw new InvalidSectionValue("must be more than 0 and at most 1");
      return value;
    } },
  { section: "limits", key: "max_power_watts", field: "max_power_watts", env: "TESSERA_MAX_POWER_WATTS", flag: "--max-power", arg: "<watts>", defaultText: "0",
    description: "GPU power cap in watts (0: none)", parse: (raw) => {
      const value = fraction(0, 10_000)(raw);
      if (!Number.isInteger(value)) throw new InvalidSectionValue("must be a whole number of watts");
      return value;
    } },
  { section: "limits", key: "pause_on_battery", field: "pause_on_battery", env: "TESSERA_PAUSE_ON_BATTERY", flag: undefined, arg: "<bool>", defaultText: "true",
    description: "Step aside while the machine runs on battery", parse: bool },
];

export type SectionFlags = Partial<Record<string, unknown>>;
export type SectionSource = "flag" | "env" | "file" | "default";

/** `idle.enlist_after` → the value, for flags (`--idle-after 90s` arrives as `{"idle.enlist_after": "90s"}`). */
export function sectionSettingId(s: SectionSettingSpec): string {
  return `${s.section}.${s.key}`;
}

/**
 * Reads both sections from node.toml's parsed table, env and flags. Unknown keys and a section that is not a table
 * are refused by name.
 */
export function loadSectionSettings(
  file: Record<string, unknown> | undefined,
  env: Record<string, string | undefined>,
  flags: SectionFlags,
  configFile: string,
): { idle: IdleSettings; limits: LimitSettings; sources: Record<string, SectionSource> } {
  const out: Record<SectionName, Record<string, unknown>> = { idle: {}, limits: {} };
  const sources: Record<string, SectionSource> = {};
  for (const section of ["idle", "limits"] as const) {
    const table = file?.[section];
    if (table === undefined) continue;
    if (typeof table !== "object" || table === null || Array.isArray(table)) {
      throw new TesseraError("bad_request", `[${section}] in ${configFile} must be a table (a [${section}] section), not a value`);
    }
    const known = SECTION_SETTINGS.filter((s) => s.section === section).map((s) => s.key);
    for (const key of Object.keys(table)) {
      if (!known.includes(key)) {
        throw new TesseraError("bad_request", `unknown key ${JSON.stringify(key)} in [${section}] of ${configFile}; known keys: ${known.join(", ")}`);
      }
    }
  }
  for (const s of SECTION_SETTINGS) {
    const fileValue = (file?.[s.section] as Record<string, unknown> | undefined)?.[s.key];
    const candidates: Array<[SectionSource, unknown]> = [
      ["flag", flags[sectionSettingId(s)]],
      ["env", env[s.env] === "" ? undefined : env[s.env]],
      ["file", fileValue],
      ["default", s.defaultText],
    ];
    const [source, raw] = candidates.find(([, value]) => value !== undefined)!;
    try {
      out[s.section][s.field] = s.parse(raw);
    } catch (err) {
      if (!(err instanceof InvalidSectionValue)) throw err;
      const where = source === "flag" ? `flag ${s.flag}` : source === "env" ? `env ${s.env}` : source === "file" ? `[${s.section}] ${s.key} in node.toml` : "default";
      const how = [s.flag ? `${s.flag}` : undefined, s.env, `\`${s.key}\` under [${s.section}] in node.toml`].filter(Boolean).join(", ");
      throw new TesseraError("bad_request", `invalid ${s.section}.${s.key} ${JSON.stringify(raw)} (from ${where}): ${err.message}; set it with ${how}`);
    }
    sources[sectionSettingId(s)] = source;
  }
  out.idle.display = { x11: Boolean(env.DISPLAY), wayland: Boolean(env.WAYLAND_DISPLAY) };
  return { idle: out.idle as unknown as IdleSettings, limits: out.limits as unknown as LimitSettings, sources };
}

/** The sections' rows for `--help`. */
export function sectionSettingsHelp(): string[][] {
  return SECTION_SETTINGS.map((s) => [`[${s.section}] ${s.key}`, s.flag ? `${s.flag} ${s.arg}` : "", s.env, s.defaultText || '""', s.description]);
}

/** The commented sections appended to a new node.toml. */
export function renderSections(): string {
  const lines: string[] = [];
  for (const section of ["idle", "limits"] as const) {
    lines.push(section === "idle"
      ? "# When this node serves: only while the machine is idle, stepping aside when its owner is back (docs/contributing-a-gpu.md)."
      : "# Caps on what the node may use of this machine.");
    lines.push(`[${section}]`);
    for (const s of SECTION_SETTINGS.filter((x) => x.section === section)) {
      lines.push(`# ${s.description}.`, `# ${s.flag ? `flag ${s.flag} ${s.arg}, ` : ""}env ${s.env}, default ${s.defaultText || '""'}`);
      const literal = /^-?\d+(\.\d+)?$/.test(s.defaultText) || s.defaultText === "true" || s.defaultText === "false" ? s.defaultText : JSON.stringify(s.defaultText);
      lines.push(`# ${s.key} = ${literal}`, "");
    }
  }
  return lines.join("\n");
}
