import { join } from "node:path";
import type { NodeConfig } from "../config.js";
import type { NodeLogger } from "../logger.js";
import type { Clock } from "../session-client.js";
import { createCommandRunner } from "../hardware/command-runner.js";
import { DEFAULT_BACKOFF, type PolicySettings } from "./policy.js";
import { createFileProbe } from "./probes/file-probe.js";
import { createMachineProbe } from "./probes/machine-probe.js";
import { userManagerSession } from "./probes/session-environment.js";
import type { IdleProbe } from "./probes/probe.js";
import { IDLE_STATE_FILE_NAME, type IdleEffects, IdleSupervisor } from "./supervisor.js";

export { IdleSupervisor, IDLE_STATE_FILE_NAME, type IdleEffects, type IdleStatusFile } from "./supervisor.js";
export { type IdleProbe, type IdleSample } from "./probes/probe.js";
export { step, drained, initialState, type PolicyState, type PolicySettings, type IdleStateName } from "./policy.js";
export { releaseModelMemory, reloadModel } from "./release-memory.js";
export { recentOwnWork } from "./own-gpu-work.js";

export function policySettings(config: Pick<NodeConfig, "idle" | "limits">): PolicySettings {
  return {
    enlistAfterMs: config.idle.enlist_after_ms,
    inputIdleThresholdMs: config.idle.input_idle_threshold_ms,
    gpuUtilFloor: config.idle.gpu_util_floor,
    pauseOnBattery: config.limits.pause_on_battery,
    unknownMeansIdle: config.idle.unknown_means_idle,
    ...DEFAULT_BACKOFF,
  };
}

/**
 * The probe the config asks for: the test hook's file, else the machine's tools. `ownGpuBusy` says when this daemon's
 * own work may show in a whole-device GPU reading (own-gpu-work.ts).
 */
export function probeFromConfig(config: Pick<NodeConfig, "idle">, ownGpuBusy?: () => boolean): IdleProbe {
  if (config.idle.probe_file) return createFileProbe(config.idle.probe_file);
  const run = createCommandRunner(3_000);
  return createMachineProbe({
    run,
    // A systemd user service may start before the desktop: find its display through the user manager.
    session: userManagerSession(run, Date.now),
    platform: process.platform,
    ownPids: new Set([process.pid]),
    display: config.idle.display,
    inputIdleThresholdMs: config.idle.input_idle_threshold_ms,
    ...(ownGpuBusy ? { ownGpuBusy } : {}),
  });
}

/** One log line at start: when the node serves and what it may use, as [idle] and [limits] resolved them. */
export function describeIdleAndLimits(config: Pick<NodeConfig, "idle" | "limits">): string {
  const { idle, limits } = config;
  const when = idle.mode === "always"
    ? "idle policy off ([idle] mode = always): serving whenever the daemon runs"
    : `idle policy: serving after ${idle.enlist_after_ms / 1000} s of quiet, stepping aside on use (drain grace ${idle.drain_grace_ms} ms, ` +
      `${idle.release_on_use ? "model released" : "model kept loaded"}, cannot tell = ${idle.unknown_means_idle ? "idle" : "busy"})`;
  const caps = `limits: max_vram_fraction ${limits.max_vram_fraction}, max_power_watts ${limits.max_power_watts || "none"}, pause_on_battery ${limits.pause_on_battery}`;
  return `${when}; ${caps}`;
}

/** The supervisor for a daemon, or undefined when `[idle] mode = "always"`. */
export function createIdleSupervisor(
  config: Pick<NodeConfig, "idle" | "limits" | "paths">,
  deps: { clock: Clock; logger: NodeLogger; effects: IdleEffects; probe?: IdleProbe; ownGpuBusy?: () => boolean },
): IdleSupervisor | undefined {
  if (config.idle.mode === "always") return undefined;
  return new IdleSupervisor({
    probe: deps.probe ?? probeFromConfig(config, deps.ownGpuBusy),
    settings: policySettings(config),
    pollIntervalMs: config.idle.poll_interval_ms,
    clock: deps.clock,
    effects: deps.effects,
    logger: deps.logger,
    statusFile: join(config.paths.dataDir, IDLE_STATE_FILE_NAME),
  });
}
