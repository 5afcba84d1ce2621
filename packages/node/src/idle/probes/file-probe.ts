import { readFile } from "node:fs/promises";
import type { IdleProbe, IdleSample } from "./probe.js";

/**
 * Tests only (`[idle] probe_file`): the machine as a JSON file read on every poll. `{"active": true}` is an owner at
 * the keyboard (input idle 0); otherwise `{"input_idle_ms", "other_gpu_util", "on_battery"}` as given. A missing or
 * unreadable file is a machine nobody uses (input idle for ever).
 */
export function createFileProbe(path: string): IdleProbe {
  return {
    async sample(): Promise<IdleSample> {
      let data: Record<string, unknown>;
      try {
        data = JSON.parse(await readFile(path, "utf8")) as Record<string, unknown>;
      } catch {
        return { inputIdleMs: Number.MAX_SAFE_INTEGER, sources: { input: "probe_file" } };
      }
      const sample: IdleSample = { sources: { input: "probe_file", gpu: "probe_file", power: "probe_file" } };
      sample.inputIdleMs = data.active === true ? 0 : typeof data.input_idle_ms === "number" ? data.input_idle_ms : Number.MAX_SAFE_INTEGER;
      if (typeof data.other_gpu_util === "number") sample.otherGpuUtil = data.other_gpu_util;
      if (typeof data.on_battery === "boolean") sample.onBattery = data.on_battery;
      return sample;
    },
  };
}
