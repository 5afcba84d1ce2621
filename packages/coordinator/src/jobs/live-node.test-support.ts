import type { LiveNode } from "../registry.js";

/**
 * An online node as the registry holds it, serving model "m" with a worker that does nothing, for scheduler tests;
 * test-only. `overrides` replace any field.
 */
export function testLiveNode(id: string, overrides: Partial<LiveNode> = {}): LiveNode {
  return {
    id,
    operatorId: id,
    retiredAt: undefined,
    version: "t",
    hardware: { cpu_cores: 1, ram_mb: 1, gpus: [] },
    models: [{ id: "m", backend: "t" }],
    maxConcurrency: 1,
    gpus: [],
    loadedModels: [],
    lastSeenAt: 0,
    online: true,
    draining: false,
    worker: { id, assign: () => undefined, cancel: () => undefined, rtt: () => 2, close: () => undefined },
    session: undefined,
    activeJobs: new Set<string>(),
    jobsElsewhere: 0,
    storedHeartbeatAt: 0,
    storedHeartbeatState: "",
    ...overrides,
  };
}
