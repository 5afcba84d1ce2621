import type { Command } from "commander";
import { addChatCommand } from "./chat.js";
import { addCoordinatorCommand } from "./coordinator.js";
import { addModelsCommand } from "./models.js";
import { addStatusCommand } from "./status.js";
import { addUpCommand } from "./up.js";
import { addInitCommand } from "./init.js";
import { addRegisterCommand } from "./register.js";
import { addStartCommand } from "./start.js";
import { addLogsCommand } from "./logs.js";
import { addModelCommand } from "./model.js";
import { addDoctorCommand } from "./doctor.js";
import { addSetupCommand } from "./setup.js";
import { addOperatorTokenCommand } from "./operator-token.js";
import { addOperatorCommand } from "./operator.js";
import { addKeysCommand } from "./keys.js";
import { addStopCommand } from "./stop.js";
import { addPayoutCommand } from "./payout.js";
import { addReceiptCommand } from "./receipt.js";
import { addServiceCommand } from "./service.js";
import { addRestartCommand } from "./restart.js";
import { addRemoveCommand } from "./remove.js";
import { addGpuCommand } from "./gpu.js";
import { addDashboardCommand } from "./dashboard.js";

/**
 * Every `tessera` command, one file each; each adds itself to the program. Defining the commands (options, help) may
 * load only light modules: commander, @tessera/protocol, @tessera/sdk, `@tessera/node/config`,
 * `@tessera/coordinator/config` and the CLI's own light files. Whatever is heavy (the node and coordinator packages,
 * inventory, doctor, setup) is imported inside the action that needs it, so `--help` and the client commands start in
 * a fraction of the time; test/startup-modules.test.ts checks it.
 */
export const COMMANDS: Array<(program: Command) => void> = [addUpCommand, addCoordinatorCommand, addChatCommand, addStatusCommand, addModelsCommand, addInitCommand, addRegisterCommand, addStartCommand, addLogsCommand, (program) => addModelCommand(program), (program) => addDoctorCommand(program), addSetupCommand, (program) => addOperatorTokenCommand(program), (program) => addOperatorCommand(program), (program) => addKeysCommand(program), (program) => addStopCommand(program), addPayoutCommand, addReceiptCommand, (program) => addServiceCommand(program), (program) => addRestartCommand(program), (program) => addRemoveCommand(program), addGpuCommand, (program) => addDashboardCommand(program)];
