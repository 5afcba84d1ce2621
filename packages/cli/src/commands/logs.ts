import type { Command } from "commander";
import { loadNodeConfig, settingFlagsFromOptions } from "@tessera/node/config";
import { TesseraError } from "@tessera/protocol";
import { type NodeFlags, withHomeOption } from "./node-options.js";

/** `tessera logs [-f] [--lines N]`: the daemon's log file, last N lines (default 200), optionally followed. */
export function addLogsCommand(program: Command): void {
  withHomeOption(
    program
      .command("logs")
      .description("print the node daemon's log (the file `tessera start` writes)")
      .option("-f, --follow", "keep printing lines as they are written")
      .option("--lines <n>", "how many of the last lines to print", "200")
      .option("--log-file <path>", "read this log file instead of the configured one (TESSERA_LOG_FILE)"),
  ).action(async (flags: NodeFlags & { follow?: boolean; lines: string }) => {
    const lines = Number(flags.lines);
    if (!/^\d+$/.test(flags.lines) || !Number.isSafeInteger(lines)) {
      throw new TesseraError("bad_request", `--lines must be a whole number ≥ 0, got ${JSON.stringify(flags.lines)}`);
    }
    const config = loadNodeConfig({ home: flags.home, flags: settingFlagsFromOptions(flags) });
    const { followFile, tailLines } = await import("@tessera/node/log-tail");
    const { text, size } = tailLines(config.log_file, lines);
    process.stdout.write(text);
    if (!flags.follow) return;
    const follower = followFile(config.log_file, size, (chunk) => process.stdout.write(chunk));
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
