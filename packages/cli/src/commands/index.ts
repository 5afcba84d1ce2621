import type { Command } from "commander";
import { addChatCommand } from "./chat.js";
import { addCoordinatorCommand } from "./coordinator.js";
import { addModelsCommand } from "./models.js";
import { addStatusCommand } from "./status.js";

/** Every `tessera` command, one file each; each adds itself to the program. */
export const COMMANDS: Array<(program: Command) => void> = [addCoordinatorCommand, addChatCommand, addStatusCommand, addModelsCommand];
