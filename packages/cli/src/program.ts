import { Command, CommanderError } from "commander";
import { reportError } from "./report-error.js";
import { COMMANDS } from "./commands/index.js";
import { CLI_VERSION } from "./version.js";

export function buildProgram(): Command {
  const program = new Command("tessera")
    .description("Tessera: a community-owned LLM inference network.\nRun `tessera up` for a local network in one command.")
    .version(CLI_VERSION)
    .showHelpAfterError("(run with --help for usage)")
    .exitOverride();
  for (const add of COMMANDS) add(program);
  return program;
}

/** Parses argv (as process.argv: node, script, args…) and runs the command; sets process.exitCode on failure. */
export async function runProgram(argv: string[]): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      process.exitCode = err.exitCode;
      return;
    }
    process.exitCode = reportError(err);
  }
}
