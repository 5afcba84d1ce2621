import type { Command } from "commander";
import { DASHBOARD_LOGIN_LINK_TTL_SECONDS, createOperatorToken } from "@tessera/protocol";
import { printJson } from "../output.js";
import { type NodeFlags, nodeConfigFrom, withNodeSettings } from "./node-options.js";

/**
 * `tessera dashboard login`: a one-time link that signs this node's operator in to the coordinator's dashboard;
 * `tessera dashboard owner-login`, the same signed by the coordinator's platform key, signs its owner in. The
 * link carries a 5-minute operator token signed by the node key (the secret key never leaves this machine); the
 * coordinator accepts it once. The token is in the link's `#` part, which browsers do not send to servers or in
 * referrers.
 */
export function addDashboardCommand(program: Command, nowMs: () => number = () => Date.now()): void {
  const dashboard = program.command("dashboard").description("the coordinator's web dashboard");
  withNodeSettings(
    dashboard
      .command("login")
      .description("print a one-time link that signs this node's operator in to the dashboard (valid 5 minutes)")
      .option("--json", "print JSON"),
  ).action(async (flags: NodeFlags & { json?: boolean }) => {
    const config = nodeConfigFrom(flags, false);
    const { signerFromKeyFile } = await import("@tessera/node/key-store");
    const signer = signerFromKeyFile(config.paths.keyFile);
    const nowSeconds = Math.floor(nowMs() / 1000);
    const token = createOperatorToken(signer, { nowSeconds, ttlSeconds: DASHBOARD_LOGIN_LINK_TTL_SECONDS });
    const url = `${config.coordinator_url.replace(/\/+$/, "")}/#/login/${token}`;
    const expiresAt = new Date((nowSeconds + DASHBOARD_LOGIN_LINK_TTL_SECONDS) * 1000).toISOString();
    if (flags.json) return printJson({ url, node_id: signer.publicKeyHex, expires_at: expiresAt });
    process.stdout.write(`Open this link to sign in to the dashboard as this node's operator (once, until ${expiresAt}):\n\n  ${url}\n\nAnyone holding it before then can sign in as you: do not share it.\n`);
  });

  dashboard
    .command("owner-login")
    .description("on the coordinator's machine: print a one-time link that signs the owner in to the dashboard's Admin page (valid 5 minutes)")
    .option("--data-dir <dir>", "the coordinator's data dir (where its platform key is)")
    .option("--url <url>", "the coordinator's address as your browser reaches it (default: http://127.0.0.1:<its port>)")
    .option("--json", "print JSON")
    .action(async (flags: { dataDir?: string; url?: string; json?: boolean }) => {
      const { loadCoordinatorConfig } = await import("@tessera/coordinator/config");
      const { loadOrCreatePlatformKey } = await import("@tessera/coordinator/platform-key");
      const config = loadCoordinatorConfig(flags.dataDir === undefined ? {} : { dataDir: flags.dataDir });
      // The owner is whoever holds the platform key, which the coordinator countersigns receipts with.
      const signer = loadOrCreatePlatformKey(config.dataDir);
      const nowSeconds = Math.floor(nowMs() / 1000);
      const token = createOperatorToken(signer, { nowSeconds, ttlSeconds: DASHBOARD_LOGIN_LINK_TTL_SECONDS });
      const base = (flags.url ?? `http://127.0.0.1:${config.port}`).replace(/\/+$/, "");
      const url = `${base}/#/login/${token}`;
      const expiresAt = new Date((nowSeconds + DASHBOARD_LOGIN_LINK_TTL_SECONDS) * 1000).toISOString();
      if (flags.json) return printJson({ url, expires_at: expiresAt });
      process.stdout.write(`Open this link to sign in to the dashboard as the coordinator's owner (once, until ${expiresAt}):\n\n  ${url}\n\nAnyone holding it before then can act as the owner: do not share it.\n`);
    });
}
