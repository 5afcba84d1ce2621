export { createCoordinator, startCoordinator, storeOptionsForConfig, type Coordinator, type RunningCoordinator } from "./coordinator.js";
export { loadCoordinatorConfig, settingsHelp, COORDINATOR_SETTINGS, defaultDataDir, type CoordinatorConfig } from "./config.js";
export { ManualClock, systemClock, type Clock } from "./clock.js";
export { createLogger } from "./logger.js";
export { generateApiToken, hashApiToken } from "./api-keys.js";
export { openStore } from "./store/index.js";
export type { Store } from "./store/types.js";
export * from "./scheduler/index.js";
export * from "./placement/index.js";
