import { randomUUID } from "node:crypto";
import type { Command } from "commander";
import { COORDINATOR_SETTINGS, loadCoordinatorConfig, parseBusUrl, settingsHelp, type CoordinatorConfig, type CoordinatorFlags } from "@tessera/coordinator/config";
import { TesseraError, encodeNpub } from "@tessera/protocol";
import { openStoreFor } from "../store-options.js";
import { printJson } from "../output.js";
import { ensurePortFree } from "../port-check.js";
import { FORCE_HINT, waitForSignal } from "../wait-for-signal.js";
import { addAdmissionCommands, withStoreFlags } from "./coordinator-admission.js";
import { addSettlementCommands } from "./coordinator-settlement.js";
import { addCreditCommands } from "./coordinator-credits.js";
import { printedCommand } from "../config.js";

/** Commander's name for a flag's value (`--data-dir` → `dataDir`). */
function optionName(flag: string): string {
  return flag.replace(/^--/, "").replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

/** `coordinator start`'s parsed options as config flags, by the settings table; a repeated flag's values joined with commas. */
export function coordinatorConfigFromOptions(options: Record<string, unknown>): CoordinatorConfig {
  const flags: CoordinatorFlags = {};
  for (const s of COORDINATOR_SETTINGS) {
    const value = options[optionName(s.flag)];
    if (value !== undefined) flags[s.key] = Array.isArray(value) ? value.join(",") : (value as string | boolean);
  }
  return loadCoordinatorConfig(flags);
}

export function addCoordinatorCommand(program: Command): void {
  const coordinator = program.command("coordinator").description("run and administer the coordinator (control plane)");

  const start = coordinator.command("start").description("start the coordinator in the foreground");
  // One flag per setting, from the coordinator's own table (config.ts), which also prints below and reads the env.
  for (const s of COORDINATOR_SETTINGS) start.option(s.arg ? `${s.flag} ${s.arg}` : s.flag, s.default ? `${s.description} (default: ${s.default})` : s.description);
  start
    .addHelpText("after", `\nSettings (flag, environment variable, meaning):\n${settingsHelp()}`)
    .action(async (options: Record<string, unknown>) => {
      const config = coordinatorConfigFromOptions(options);
      await ensurePortFree(config.host, config.port);
      const { startCoordinator } = await import("@tessera/coordinator");
      const running = await startCoordinator(config);
      const where = config.dbUrl ? "PostgreSQL" : `${config.dataDir}/coordinator.db`;
      process.stdout.write(`tessera coordinator listening on ${running.url} (store: ${where}${config.open ? ", open mode" : ""}, admission: ${config.admission}, replica: ${running.replica.id}${config.busUrl ? `, bus: ${parseBusUrl(config.busUrl).shown}` : ""})\n`);
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
