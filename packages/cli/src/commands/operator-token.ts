import type { Command } from "commander";
import { OPERATOR_TOKEN_MAX_TTL_SECONDS, createOperatorToken, parseDuration } from "@tessera/protocol";
import { printJson } from "../output.js";
import { type NodeFlags, nodeConfigFrom, withNodeSettings } from "./node-options.js";

/** `90s`, `30m`, `2h`, or plain seconds → seconds; bad_request otherwise or beyond 24 h. */
export function parseTtl(text: string): number {
  return parseDuration(text, "--ttl", { min: 1, max: OPERATOR_TOKEN_MAX_TTL_SECONDS });
}

/**
 * `tessera node operator-token`: a short-lived token, signed by this node's key, that lets its holder queue and read
 * this node's commands (`Authorization: Bearer tsop1.…`) — for managing the node from another machine.
 */
export function addOperatorTokenCommand(program: Command, nowMs: () => number = () => Date.now()): void {
  const node = program.commands.find((c) => c.name() === "node") ?? program.command("node").description("node daemon commands");
  withNodeSettings(
    node
      .command("operator-token")
      .description("print a short-lived operator token for this node's command queue (POST/GET /api/v1/nodes/:id/commands)")
      .option("--ttl <duration>", "lifetime, 1s to 24h (e.g. 30m, 2h)", "1h")
      .option("--json", "print JSON"),
  ).action(async (flags: NodeFlags & { ttl: string; json?: boolean }) => {
    const ttlSeconds = parseTtl(flags.ttl);
    const config = nodeConfigFrom(flags, false);
    const { signerFromKeyFile } = await import("@tessera/node/key-store");
    const signer = signerFromKeyFile(config.paths.keyFile);
    const nowSeconds = Math.floor(nowMs() / 1000);
    const token = createOperatorToken(signer, { nowSeconds, ttlSeconds });
    const expiresAt = new Date((nowSeconds + ttlSeconds) * 1000).toISOString();
    if (flags.json) return printJson({ token, node_id: signer.publicKeyHex, expires_at: expiresAt });
    process.stdout.write(
      [
        token,
        "",
        `valid until ${expiresAt} for node ${signer.publicKeyHex}`,
        `use: curl -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' \\`,
        `       -d '{"type":"model_install","model":"qwen2.5:7b"}' ${config.coordinator_url}/api/v1/nodes/${signer.publicKeyHex}/commands`,
        "",
      ].join("\n"),
    );
  });
}
