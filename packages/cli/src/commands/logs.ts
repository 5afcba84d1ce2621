import type { Command } from "commander";
import { loadNodeConfig, settingFlagsFromOptions } from "@tessera/node/config";
import { TesseraError, formatLogText, resolveLogFormat } from "@tessera/protocol";
import { type NodeFlags, withHomeOption } from "./node-options.js";

/**
 * `tessera logs [-f] [--lines N]`: the daemon's log file, last N lines (default 200), optionally followed. The file
 * holds JSON records; they print readable on a terminal and as they are when piped (`--log-format` overrides).
 */
export function addLogsCommand(program: Command): void {
  withHomeOption(
    program
      .command("logs")
      .description("print the node daemon's log (the file `tessera start` writes)")
      .option("-f, --follow", "keep printing lines as they are written")
      .option("--lines <n>", "how many of the last lines to print", "200")
      .option("--log-file <path>", "read this log file instead of the configured one (TESSERA_LOG_FILE)")
      .option("--log-format <format>", "auto (readable on a terminal, JSON otherwise), pretty or json (TESSERA_LOG_FORMAT)"),
  ).action(async (flags: NodeFlags & { follow?: boolean; lines: string }) => {
    const lines = Number(flags.lines);
    if (!/^\d+$/.test(flags.lines) || !Number.isSafeInteger(lines)) {
      throw new TesseraError("bad_request", `--lines must be a whole number ≥ 0, got ${JSON.stringify(flags.lines)}`);
    }
    const config = loadNodeConfig({ home: flags.home, flags: settingFlagsFromOptions(flags) });
    const { followFile, tailLines } = await import("@tessera/node/log-tail");
    const pretty = resolveLogFormat(config.log_format, process.stdout.isTTY === true) === "pretty";
    let partial = "";
    const print = (chunk: string) => {
      if (!pretty) return void process.stdout.write(chunk);
      const { lines: rendered, rest } = formatLogText(partial + chunk);
      partial = rest;
      process.stdout.write(rendered);
    };
    const { text, size } = tailLines(config.log_file, lines);
    print(text);
    if (!flags.follow) return;
    const follower = followFile(config.log_file, size, print);
    await new Promise<void>((resolve) => {
      const stop = () => {
        follower.stop();
        resolve();
      };
      process.once("SIGINT", stop);
      process.once("SIGTERM", stop);
    });
  });
}
