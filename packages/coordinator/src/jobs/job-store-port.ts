import type { Store } from "../store/types.js";

/** The part of the store the job machinery writes to. */
export type JobStorePort = Pick<Store, "insertJob" | "updateJob" | "addJobSegment">;
