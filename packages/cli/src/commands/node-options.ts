import type { Command } from "commander";
import { NODE_SETTINGS, SECTION_SETTINGS, loadNodeConfig, settingFlagsFromOptions, settingsHelp, type NodeConfig } from "@tessera/node/config";
import { printedCommand } from "../config.js";

/** Flags shared by the node commands (init, register, start, logs). */
export interface NodeFlags {
  home?: string;
  [option: string]: unknown;
}

export function withHomeOption(cmd: Command): Command {
  return cmd.option("--home <dir>", "keep config, keys, logs and data in this directory (TESSERA_HOME)");
}

/** `--home` plus one flag per node setting, and the settings table in `--help`. */
export function withNodeSettings(cmd: Command): Command {
  withHomeOption(cmd);
  for (const s of NODE_SETTINGS) cmd.option(`${s.flag} ${s.arg}`, `${s.description} (${s.env})`);
  for (const s of SECTION_SETTINGS) if (s.flag) cmd.option(`${s.flag} ${s.arg}`, `[${s.section}] ${s.key}: ${s.description} (${s.env})`);
  return cmd.addHelpText("after", `\n${settingsHelp()}`);
}

export function nodeConfigFrom(flags: NodeFlags, requireConfigFile: boolean): NodeConfig {
  const settingFlags = settingFlagsFromOptions(flags);
  // `--models a,b` (tessera start) is --served-models by a shorter name; the longer one wins when both are given.
  if (flags.models !== undefined && settingFlags.served_models === undefined) settingFlags.served_models = flags.models;
  return loadNodeConfig({ home: flags.home, flags: settingFlags, requireConfigFile, command: printedCommand() });
}
