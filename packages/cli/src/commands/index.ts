import type { Command } from "commander";

/** Every `tessera` command, one file each; each adds itself to the program. */
export const COMMANDS: Array<(program: Command) => void> = [];
