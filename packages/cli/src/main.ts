import { CLI_VERSION } from "./version.js";

/**
 * The `tessera` command. `--version` (or `-V`) alone answers before anything else loads, with the line commander's
 * version option prints: the program (commander and every command's module, which load @tessera/protocol, ~0.3 s of
 * zod and noble) is imported only for a real command. bench/cli-startup.ts measures it.
 */
export async function main(argv: string[]): Promise<void> {
  // A reader that stops early (`tessera … --help | head`) is not an error: stop quietly, as Unix tools do.
  process.stdout.on("error", (err: NodeJS.ErrnoException) => {
    if (err.code === "EPIPE") process.exit(0);
    throw err;
  });
  const args = argv.slice(2);
  if (args.length === 1 && (args[0] === "--version" || args[0] === "-V")) {
    process.stdout.write(`${CLI_VERSION}\n`);
    return;
  }
  const { runProgram } = await import("./program.js");
  await runProgram(argv);
}
