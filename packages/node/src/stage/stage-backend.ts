/** The runtimes a layer span can run on (`stage_backend`): one list, read by config.ts and by span-runtime.ts. */
export const STAGE_BACKENDS = ["auto", "wasm", "ggml-cpu"] as const;
export type StageBackend = (typeof STAGE_BACKENDS)[number];
