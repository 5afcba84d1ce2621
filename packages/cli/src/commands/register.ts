import type { Command } from "commander";
import { JOIN_TOKEN_PATTERN, TesseraError, encodeNpub } from "@tessera/protocol";
import { printJson } from "../output.js";
import { type NodeFlags, nodeConfigFrom, withNodeSettings } from "./node-options.js";

/** `tessera register`: announces this node (key, coarse hardware, served models) to the coordinator once. */
export function addRegisterCommand(program: Command): void {
  withNodeSettings(
    program
      .command("register")
      .description("announce this node to the coordinator: its public key, coarse hardware and the models it serves")
      .option("--join-token <token>", "a join token from the coordinator's owner: admits your operator key where admission is `token`")
      .option("--json", "print the coordinator's answer as JSON"),
  ).action(async (flags: NodeFlags & { json?: boolean; joinToken?: string }) => {
    const config = nodeConfigFrom(flags, true);
    const joinToken = checkJoinToken(flags.joinToken);
    const { createBackendFromConfig, createNodeLogger, machineProbe, registerNode, resolveServedModels, signerFromKeyFile } = await import("@tessera/node");
    const { loadNodeIdentity } = await import("@tessera/node/identity");
    const signer = signerFromKeyFile(config.paths.keyFile);
    const identity = loadNodeIdentity(config.paths, signer, Math.floor(Date.now() / 1000));
    const { logger } = createNodeLogger({ level: "warn", stdout: { write: (line: string) => process.stderr.write(line) } });
    const backend = await createBackendFromConfig(config, { fetch: (input, init) => fetch(input, init), logger });
    try {
      const { served, missing, refused } = resolveServedModels(config.served_models, await backend.listModels(), backend.kind);
      for (const id of missing) process.stderr.write(`warning: served_models lists ${id} but backend ${backend.kind} does not have it\n`);
      for (const why of refused) process.stderr.write(`warning: ${why}\n`);
      const answer = await registerNode(config, { signer, models: served, hardware: await machineProbe().detectHardware(), identity, joinToken });
      if (flags.json) return printJson(answer);
      process.stdout.write(
        [
          `registered   ${encodeNpub(signer.publicKeyHex)} with ${config.coordinator_url}`,
          `operator     ${encodeNpub(answer.operator)}${answer.operator === signer.publicKeyHex ? " (the node is its own operator)" : ""}`,
          `status       ${answer.status} (heartbeat every ${answer.heartbeat_interval_s} s once \`tessera start\` runs)`,
          `backend      ${backend.kind}`,
          `models       ${served.length ? served.map((m) => m.id).join(", ") : "none"}`,
          "",
        ].join("\n"),
      );
    } finally {
      await backend.close?.();
    }
  });
}

/** A join token's shape is checked here, before anything is loaded or sent. */
export function checkJoinToken(token: string | undefined): string | undefined {
  if (token === undefined) return undefined;
  const trimmed = token.trim();
  if (!JOIN_TOKEN_PATTERN.test(trimmed)) throw new TesseraError("bad_request", "--join-token must be the token `tessera coordinator join-tokens create` printed (tsjt_ and 32 more characters)");
  return trimmed;
}
