import type { Command } from "commander";
import { DELEGATION_MAX_TTL_SECONDS, TesseraError, encodeNpub, parsePublicKey, signDelegation, parseDuration } from "@tessera/protocol";
import { printJson } from "../output.js";
import { type NodeFlags, nodeConfigFrom, withHomeOption } from "./node-options.js";

/**
 * `tessera operator init|delegate`: the operator key, the first level of user → node → model. `tessera init` and
 * `setup` make one on a node's machine; these are for an operator who keeps it elsewhere and vouches for each node.
 */
export function addOperatorCommand(program: Command, nowMs: () => number = () => Date.now()): void {
  const operator = program.command("operator").description("the operator key: vouches for your nodes; nodes under one key count (and are paid) as one operator");

  withHomeOption(operator.command("init"))
    .description("make an operator key (operator.toml, 0600) in the config dir; keeps an existing one")
    .option("--json", "print JSON")
    .action(async (flags: NodeFlags & { json?: boolean }) => {
      const config = nodeConfigFrom(flags, false);
      const { ensurePrivateKeyFile } = await import("@tessera/node/identity");
      const { keys, created } = ensurePrivateKeyFile(config.paths.operatorKeyFile, "operator");
      if (flags.json) return printJson({ operator: keys.publicKeyHex, npub: encodeNpub(keys.publicKeyHex), file: config.paths.operatorKeyFile, created });
      process.stdout.write(
        [
          `operator     ${encodeNpub(keys.publicKeyHex)}`,
          `             ${keys.publicKeyHex}`,
          `key          ${config.paths.operatorKeyFile} (${created ? "created" : "exists, kept"}; keep it private and backed up)`,
          "",
          "Nodes on this machine are vouched for automatically. For a node elsewhere:",
          "  tessera operator delegate <node npub>   and save the output as delegation.json beside that node's keys.toml",
          "",
        ].join("\n"),
      );
    });

  withHomeOption(operator.command("delegate"))
    .description("sign a delegation for a node key (prints JSON to save as that node's delegation.json)")
    .argument("<node>", "the node's npub1… or hex key (`tessera keys list` on the node shows it)")
    .option("--expires <duration>", "how long it is valid, e.g. 90d (at most 730d)", "365d")
    .action(async (text: string, flags: NodeFlags & { expires: string }) => {
      const node = parsePublicKey(text);
      if (!node) throw new TesseraError("bad_request", `"${text}" is not a node key: give its npub1… or 64-character hex`);
      const ttlSeconds = parseDuration(flags.expires, "--expires", { min: 3600, max: DELEGATION_MAX_TTL_SECONDS });
      const config = nodeConfigFrom(flags, false);
      const { signerFromKeyFile } = await import("@tessera/node/key-store");
      const signer = signerFromKeyFile(config.paths.operatorKeyFile, "operator");
      printJson(signDelegation(signer, node, { nowSeconds: Math.floor(nowMs() / 1000), ttlSeconds }));
    });
}
