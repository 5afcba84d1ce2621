import type { Command } from "commander";
import { TesseraClient } from "@tessera/sdk";
import { CLIENT_SETTINGS_HELP, loadClientSettings, printedCommand } from "../config.js";

export interface ClientFlags {
  url?: string;
  apiKey?: string;
  json?: boolean;
}

/** Adds the flags every client command shares. */
export function withClientOptions(cmd: Command): Command {
  return cmd
    .option("--url <url>", "coordinator URL (TESSERA_URL)")
    .option("--api-key <key>", "API key (TESSERA_API_KEY)")
    .addHelpText("after", `\nConnection settings:\n${CLIENT_SETTINGS_HELP}`);
}

export function clientFrom(flags: ClientFlags): TesseraClient {
  const settings = loadClientSettings(flags);
  return new TesseraClient({ baseUrl: settings.url, startCommand: `${printedCommand()} up`, ...(settings.apiKey ? { apiKey: settings.apiKey } : {}) });
}
