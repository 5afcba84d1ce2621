import { NODE_SETTINGS, HOME_ENV, HOME_FLAG, type NodeSettings } from "./config.js";
import { renderSections } from "./idle/idle-settings.js";

/**
 * Renders node.toml: every setting from the one table, each with its description, flag and env var as comments.
 * Settings given in `values` are written live; the rest stay commented out at their defaults, so the file documents
 * every knob without pinning defaults that a later version may improve.
 */
export function renderNodeToml(values: Partial<NodeSettings>, defaultLogFile: string): string {
  const lines = [
    "# Tessera node configuration.",
    "# Precedence: command-line flag > environment variable > this file > built-in default.",
    `# ${HOME_FLAG} DIR (or ${HOME_ENV}) keeps config, keys, logs and data in one directory.`,
    "# Keys live in keys.toml beside this file; never share that one.",
    "",
  ];
  for (const s of NODE_SETTINGS) {
    lines.push(`# ${s.description}.`, `# flag ${s.flag} ${s.arg}, env ${s.env}, default ${s.defaultText || '""'}`);
    const value = values[s.name];
    if (value !== undefined) lines.push(`${s.name} = ${tomlValue(value)}`);
    else lines.push(`# ${s.name} = ${s.name === "log_file" ? JSON.stringify(defaultLogFile) : tomlDefault(s.defaultText, s.name)}`);
    lines.push("");
  }
  // Sections come after every top-level key (TOML puts keys after a [header] into that section).
  lines.push(renderSections());
  return lines.join("\n");
}

function tomlDefault(defaultText: string, name: string): string {
  if (name === "served_models" || name === "embedding_models" || name === "score_eos_token_ids") return "[]";
  if (defaultText === "true" || defaultText === "false") return defaultText;
  if (name === "vllm_instances") return '[{ host = "http://127.0.0.1:8001", model = "Qwen/Qwen2.5-7B-Instruct" }]';
  return /^-?\d+(\.\d+)?$/.test(defaultText) ? defaultText : JSON.stringify(defaultText);
}

/** JSON strings are valid TOML basic strings (same escapes); arrays and objects become inline arrays/tables. */
function tomlValue(value: unknown): string {
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  if (Array.isArray(value)) return `[${value.map(tomlValue).join(", ")}]`;
  if (typeof value === "object" && value !== null) {
    const fields = Object.entries(value).filter(([, v]) => v !== undefined);
    return `{ ${fields.map(([k, v]) => `${k} = ${tomlValue(v)}`).join(", ")} }`;
  }
  return JSON.stringify(String(value));
}
