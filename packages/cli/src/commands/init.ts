import type { Command } from "commander";
import { encodeNpub } from "@tessera/protocol";
import { settingFlagsFromOptions } from "@tessera/node/config";
import { printedCommand } from "../config.js";
import { type NodeFlags, withNodeSettings } from "./node-options.js";

/** `tessera init`: makes the node keypair and a commented node.toml (both 0600); never overwrites either. */
export function addInitCommand(program: Command): void {
  withNodeSettings(
    program
      .command("init")
      .description("create this node's keypair and a commented config file (node.toml); settings given are written into it"),
  ).action(async (flags: NodeFlags) => {
    const { initNode } = await import("@tessera/node/init-node");
    const result = initNode({ home: flags.home, settings: settingFlagsFromOptions(flags) });
    const { paths } = result.config;
    const homeFlag = paths.home !== undefined ? ` --home ${paths.home}` : "";
    const tessera = printedCommand();
    process.stdout.write(
      [
        `node id      ${result.npub}`,
        `             ${result.nodeId}`,
        `config       ${paths.configFile} (${result.createdConfig ? "created" : "exists, left as is"})`,
        `keys         ${paths.keyFile} (${result.createdKeys ? "created" : "exists, kept"})`,
        `operator     ${encodeNpub(result.operatorId)} (${paths.operatorKeyFile}, ${result.createdOperatorKey ? "created" : "exists, kept"})`,
        `coordinator  ${result.config.coordinator_url}`,
        `logs         ${result.config.log_file}`,
        "",
        `next: ${tessera} register${homeFlag} && ${tessera} start${homeFlag}   (a closed coordinator wants --join-token TOKEN once)`,
        "",
      ].join("\n"),
    );
  });
}
