import { TesseraError } from "@tessera/protocol";
import { type Invocation, tesseraCommand } from "./invocation.js";

/**
 * The CLI's own settings (the client commands: chat, status, models). The only place in this package that reads
 * `process.env`; the coordinator and node settings live in their packages' config modules.
 */
export interface ClientSettings {
  url: string;
  apiKey: string | undefined;
}

export const CLIENT_SETTINGS_HELP = `  --url <url>       TESSERA_URL       coordinator URL (default http://127.0.0.1:7337)
  --api-key <key>   TESSERA_API_KEY   API key (bearer token); not needed against \`tessera up\``;

export function loadClientSettings(flags: { url?: string; apiKey?: string }, env: NodeJS.ProcessEnv = process.env): ClientSettings {
  const url = flags.url ?? env.TESSERA_URL ?? "http://127.0.0.1:7337";
  try {
    const parsed = new URL(url);
    if (parsed.protocol !== "http:" && parsed.protocol !== "https:") throw new Error("not http");
  } catch {
    throw new TesseraError("bad_request", `--url (TESSERA_URL) must be an http:// or https:// URL, got "${url}"`);
  }
  return { url, apiKey: flags.apiKey ?? env.TESSERA_API_KEY };
}

/** The Hugging Face hub for `tessera model install hf:…` and `tessera up --model hf:…`. */
export interface HubSettings {
  endpoint: string;
  /** HF_TOKEN, for gated and private repos; env only (a token on the command line lands in shell history). */
  token: string | undefined;
}

export const HUB_SETTINGS_HELP = `  --hf-endpoint <url>  HF_ENDPOINT  Hugging Face hub or a mirror (default https://huggingface.co)
  (env only)           HF_TOKEN     token for gated or private repos`;

export function loadHubSettings(flags: { hfEndpoint?: string }, env: NodeJS.ProcessEnv = process.env): HubSettings {
  const raw = flags.hfEndpoint ?? (env.HF_ENDPOINT || undefined);
  const endpoint = (raw ?? "https://huggingface.co").trim().replace(/\/+$/, "");
  try {
    const parsed = new URL(endpoint);
    if (parsed.protocol !== "http:" && parsed.protocol !== "https:") throw new Error("not http");
  } catch {
    throw new TesseraError("bad_request", `--hf-endpoint (HF_ENDPOINT) must be an http:// or https:// URL, got "${raw}"`);
  }
  return { endpoint, token: env.HF_TOKEN || undefined };
}

/** How the user runs this CLI from their shell (`tessera`, `npx tessera`, …), for the commands it prints. */
export function printedCommand(env: NodeJS.ProcessEnv = process.env, invocation: Omit<Invocation, "path"> = { cwd: process.cwd(), script: process.argv[1] ?? "" }): string {
  return tesseraCommand({ ...invocation, path: env.PATH });
}

/** Where systemd looks for this user's units (systemd.unit(5)): $XDG_CONFIG_HOME/systemd/user, else ~/.config/systemd/user. */
export function systemdUserDir(userHome: string, env: NodeJS.ProcessEnv = process.env): string {
  return `${env.XDG_CONFIG_HOME || `${userHome}/.config`}/systemd/user`;
}
