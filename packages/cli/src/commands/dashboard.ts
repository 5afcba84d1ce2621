import type { Command } from "commander";
import { DASHBOARD_LOGIN_LINK_TTL_SECONDS, createOperatorToken } from "@tessera/protocol";
import { printJson } from "../output.js";
import { type NodeFlags, nodeConfigFrom, withNodeSettings } from "./node-options.js";

/**
 * `tessera dashboard login`: a one-time link that signs this node's operator in to the coordinator's dashboard. The
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
}
