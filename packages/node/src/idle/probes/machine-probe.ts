import { readFile, readdir } from "node:fs/promises";
import { join } from "node:path";
import { type CommandRunner, createCommandRunner } from "../../hardware/command-runner.js";
import type { IdleProbe, IdleSample } from "./probe.js";
import { type GpuProcess, othersUtilization, parseIoregGpuUtilization, parseNvidiaComputeApps, parseNvidiaUtilization, parseRocmPids, parseRocmUse } from "./parse-gpu-use.js";
import { type LineSpawner, createIdleNotifyWatcher, spawnLines } from "./idle-notify-watcher.js";
import { MUTTER_IDLETIME_ARGS, parseHidIdleTime, parseIdleMs, parseMutterIdletime, parseWindowsIdleMs } from "./parse-input-idle.js";
import { parsePmsetBatt, parsePowerSupplies, parseWin32BatteryStatus } from "./parse-power.js";
import type { SessionEnvironment } from "./session-environment.js";

/** PowerShell: milliseconds since the last input, from user32 GetLastInputInfo. */
export const WINDOWS_IDLE_SCRIPT =
  'Add-Type @"\nusing System; using System.Runtime.InteropServices;\npublic struct LII { public uint cbSize; public uint dwTime; }\n' +
  'public static class U { [DllImport("user32.dll")] public static extern bool GetLastInputInfo(ref LII p); }\n"@\n' +
  "$l = New-Object LII; $l.cbSize = 8; [void][U]::GetLastInputInfo([ref]$l); [Environment]::TickCount - $l.dwTime";

export interface MachineProbeDeps {
  run: CommandRunner;
  platform: NodeJS.Platform;
  /** This daemon's process ids (its own GPU contexts are not "others"). */
  ownPids: ReadonlySet<number>;
  /** `DISPLAY` / `WAYLAND_DISPLAY` as config.ts read them: without a display there is no input to read. */
  display: { x11: boolean; wayland: boolean };
  /**
   * Linux, when the daemon has no display of its own (a systemd user service started before the desktop): where the
   * graphical session's variables are found (session-environment.ts). None: such a daemon cannot read input.
   */
  session?: SessionEnvironment;
  /** Runs the display tools with the session's variables; default: a command runner with them set. */
  runWithEnv?: (env: Record<string, string>) => CommandRunner;
  /**
   * Whether this daemon's own work may show in a whole-device GPU reading now (idle/own-gpu-work.ts). Only the Apple
   * reading needs it: nvidia-smi and rocm-smi list processes, and ours are left out by pid. Default: never.
   */
  ownGpuBusy?: () => boolean;
  /** `[idle] input_idle_threshold`: the timeout the Wayland idle notification is asked for (default 5 s). */
  inputIdleThresholdMs?: number;
  /** Starts the Wayland idle-notification client (swayidle) and reads its lines; injectable for tests. */
  spawnLines?: LineSpawner;
  /** Clock for the Wayland notifications (ms); default Date.now. */
  now?: () => number;
  /** Reads `/sys/class/power_supply`; injectable for tests. */
  readPowerSupplies?: () => Promise<Array<{ type?: string; online?: string; status?: string }>>;
}

/** Reads each supply's `type`, `online` and `status` under `root` (exported for the sysfs trees in fixtures/). */
export async function sysPowerSupplies(root = "/sys/class/power_supply"): Promise<Array<{ type?: string; online?: string; status?: string }>> {
  let names: string[];
  try {
    names = await readdir(root);
  } catch {
    return [];
  }
  const read = (name: string, file: string) => readFile(join(root, name, file), "utf8").catch(() => undefined);
  return Promise.all(names.map(async (name) => ({ type: await read(name, "type"), online: await read(name, "online"), status: await read(name, "status") })));
}

/**
 * The production probe: per platform, the tools in design.md's table. A tool that is missing or fails leaves its
 * signal undefined ("cannot tell"); nothing here throws.
 */
export function createMachineProbe(deps: MachineProbeDeps): IdleProbe {
  const { run, platform } = deps;
  const readSupplies = deps.readPowerSupplies ?? (() => sysPowerSupplies());
  let watcher: { env: string; watcher: ReturnType<typeof createIdleNotifyWatcher> } | undefined;
  /** One swayidle per session environment: a new session (another WAYLAND_DISPLAY) gets a new one. */
  const waylandWatcher = (env: Record<string, string> | undefined) => {
    const key = JSON.stringify(env ?? {});
    if (watcher?.env !== key) {
      watcher?.watcher.close();
      watcher = {
        env: key,
        watcher: createIdleNotifyWatcher({ spawn: deps.spawnLines ?? spawnLines, now: deps.now ?? Date.now, thresholdMs: deps.inputIdleThresholdMs ?? 5_000, ...(env ? { env } : {}) }),
      };
    }
    return watcher.watcher;
  };
  const runners = new Map<string, CommandRunner>();
  const runnerFor = (env: Record<string, string> | undefined): CommandRunner => {
    if (!env) return run;
    const key = JSON.stringify(env);
    let r = runners.get(key);
    if (!r) runners.set(key, (r = (deps.runWithEnv ?? ((e) => createCommandRunner(3_000, e)))(env)));
    return r;
  };
  const ok = async (command: string, args: string[], env?: Record<string, string>): Promise<string | undefined> => {
    const result = await runnerFor(env)(command, args);
    return result.code === 0 ? result.stdout : undefined;
  };
  /** The display to read input from: this process's own, else the graphical session's (a service started before it). */
  async function display(): Promise<{ x11: boolean; wayland: boolean; env?: Record<string, string>; via?: string }> {
    if (deps.display.x11 || deps.display.wayland || !deps.session || platform !== "linux") return deps.display;
    const env = await deps.session.read().catch(() => undefined);
    if (!env) return deps.display;
    return { x11: Boolean(env.DISPLAY), wayland: Boolean(env.WAYLAND_DISPLAY), env, via: " (session found through systemctl --user)" };
  }

  async function inputIdle(): Promise<[number | undefined, string | undefined]> {
    if (platform === "darwin") return [parseHidIdleTime((await ok("ioreg", ["-c", "IOHIDSystem", "-d", "4"])) ?? ""), "ioreg HIDIdleTime"];
    if (platform === "win32") {
      return [parseWindowsIdleMs((await ok("powershell", ["-NoProfile", "-Command", WINDOWS_IDLE_SCRIPT])) ?? ""), "GetLastInputInfo"];
    }
    const d = await display();
    const via = d.via ?? "";
    if (d.wayland) {
      // XWayland's screensaver extension sees input to X11 windows only, so a Wayland session asks the compositor:
      // GNOME's Mutter answers a query; others (sway, Hyprland, Plasma 6, …) notify through ext-idle-notify.
      const mutter = parseMutterIdletime((await ok("gdbus", [...MUTTER_IDLETIME_ARGS], d.env)) ?? "");
      if (mutter !== undefined) return [mutter, `gdbus Mutter IdleMonitor${via}`];
      const notified = waylandWatcher(d.env).inputIdleMs();
      if (notified !== undefined) return [notified, `swayidle (ext-idle-notify)${via}`];
    }
    if (d.x11) {
      const x = parseIdleMs((await ok("xprintidle", [], d.env)) ?? "");
      if (x !== undefined) return [x, `xprintidle${via}`];
      const s = parseIdleMs((await ok("xssstate", ["-i"], d.env)) ?? "");
      if (s !== undefined) return [s, `xssstate${via}`];
    }
    // No display, or none of the tools answered: cannot tell.
    return [undefined, undefined];
  }

  async function gpu(): Promise<[number | undefined, string | undefined]> {
    if (platform === "darwin") {
      // Apple GPUs report whole-device utilisation only. With no per-process split the figure is others' only while
      // this daemon has no work of its own on the GPU; while it has, the GPU signal cannot tell (input and battery
      // still can), so serving a job never reads as the owner using the GPU.
      if (deps.ownGpuBusy?.()) return [undefined, undefined];
      const util = parseIoregGpuUtilization((await ok("ioreg", ["-r", "-d", "1", "-c", "IOAccelerator"])) ?? "");
      return [util, util === undefined ? undefined : "ioreg IOAccelerator"];
    }
    const apps = await ok("nvidia-smi", ["--query-compute-apps=pid,used_memory", "--format=csv,noheader"]);
    if (apps !== undefined) {
      const util = parseNvidiaUtilization((await ok("nvidia-smi", ["--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"])) ?? "");
      return [othersUtilization(parseNvidiaComputeApps(apps), util, deps.ownPids), "nvidia-smi"];
    }
    const pids = await ok("rocm-smi", ["--showpids"]);
    if (pids !== undefined) {
      const processes: GpuProcess[] = parseRocmPids(pids);
      const util = parseRocmUse((await ok("rocm-smi", ["--showuse", "--json"])) ?? "");
      return [othersUtilization(processes, util, deps.ownPids), "rocm-smi"];
    }
    return [undefined, undefined];
  }

  async function power(): Promise<[boolean | undefined, string | undefined]> {
    if (platform === "darwin") return [parsePmsetBatt((await ok("pmset", ["-g", "batt"])) ?? ""), "pmset"];
    if (platform === "win32") {
      return [parseWin32BatteryStatus((await ok("powershell", ["-NoProfile", "-Command", "(Get-CimInstance Win32_Battery).BatteryStatus"])) ?? ""), "Win32_Battery"];
    }
    return [parsePowerSupplies(await readSupplies()), "/sys/class/power_supply"];
  }

  return {
    async sample(): Promise<IdleSample> {
      const [[inputIdleMs, input], [otherGpuUtil, gpuSource], [onBattery, powerSource]] = await Promise.all([inputIdle(), gpu(), power()]);
      const sample: IdleSample = { sources: {} };
      if (inputIdleMs !== undefined) (sample.inputIdleMs = inputIdleMs), (sample.sources!.input = input);
      if (otherGpuUtil !== undefined) (sample.otherGpuUtil = otherGpuUtil), (sample.sources!.gpu = gpuSource);
      if (onBattery !== undefined) (sample.onBattery = onBattery), (sample.sources!.power = powerSource);
      return sample;
    },
    close() {
      watcher?.watcher.close();
    },
  };
}
