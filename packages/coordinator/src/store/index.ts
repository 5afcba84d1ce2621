export { openStore } from "./open-store.js";
export { METRICS_EWMA_ALPHA } from "./metric-queries.js";
export { MAX_LIST_LIMIT } from "./job-queries.js";
export type * from "./types.js";
export { ensurePrivateDir } from "./file-modes.js";
