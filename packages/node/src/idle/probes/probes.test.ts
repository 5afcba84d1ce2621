import { readFileSync } from "node:fs";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { othersUtilization, parseIoregGpuUtilization, parseNvidiaComputeApps, parseNvidiaUtilization, parseRocmPids, parseRocmUse } from "./parse-gpu-use.js";
import { parseHidIdleTime, parseIdleMs, parseMutterIdletime, parseWindowsIdleMs } from "./parse-input-idle.js";
import type { LineProcess } from "./idle-notify-watcher.js";
import { parsePmsetBatt, parsePowerSupplies, parseWin32BatteryStatus } from "./parse-power.js";
import { createMachineProbe, sysPowerSupplies } from "./machine-probe.js";
import { fileURLToPath } from "node:url";
import { createFileProbe } from "./file-probe.js";

const fixture = (name: string) => readFileSync(new URL(`../fixtures/${name}`, import.meta.url), "utf8");

describe("GPU use by other processes", () => {
  it("nvidia-smi: compute apps and utilisation; only a pid that is not ours counts", () => {
    const apps = parseNvidiaComputeApps(fixture("nvidia-smi-compute-apps.csv"));
    expect(apps).toEqual([{ pid: 2214, usedMb: 512 }, { pid: 48121, usedMb: 18230 }]);
    const util = parseNvidiaUtilization(fixture("nvidia-smi-utilization.csv"));
    expect(util).toEqual([0.97, 0.03]);
    expect(othersUtilization(apps, util, new Set([2214]))).toBe(0.97);
    expect(othersUtilization(apps, util, new Set([2214, 48121]))).toBe(0);
    expect(othersUtilization(parseNvidiaComputeApps(fixture("nvidia-smi-compute-apps-none.csv")), util, new Set())).toBe(0);
    expect(parseNvidiaUtilization(fixture("nvidia-smi-utilization-na.csv"))).toEqual([]);
    expect(othersUtilization(apps, [], new Set())).toBe(1);
    expect(othersUtilization(undefined, util, new Set())).toBeUndefined();
  });

  it("rocm-smi: KFD processes and GPU use", () => {
    expect(parseRocmPids(fixture("rocm-smi-showpids.txt"))).toEqual([{ pid: 31337, usedMb: 8192 }]);
    expect(parseRocmPids(fixture("rocm-smi-showpids-none.txt"))).toEqual([]);
    expect(parseRocmUse(fixture("rocm-smi-showuse.json"))).toEqual([0.62]);
    expect(parseRocmUse("not json")).toEqual([]);
  });

  it("macOS ioreg IOAccelerator: Device Utilization %", () => {
    expect(parseIoregGpuUtilization(fixture("ioreg-accelerator.txt"))).toBe(0.43);
    expect(parseIoregGpuUtilization("")).toBeUndefined();
  });
});

describe("input idle time", () => {
  it("xprintidle and xssstate -i (ms), ioreg HIDIdleTime (ns), GetLastInputInfo (ms)", () => {
    expect(parseIdleMs(fixture("xprintidle.txt"))).toBe(4242);
    expect(parseIdleMs(fixture("xssstate-i.txt"))).toBe(183_000);
    expect(parseHidIdleTime(fixture("ioreg-hidsystem.txt"))).toBe(95_123);
    expect(parseWindowsIdleMs(fixture("win-lastinput.txt"))).toBe(731);
    expect(parseIdleMs("couldn't open display")).toBeUndefined();
  });

  it("GNOME on Wayland: gdbus Mutter IdleMonitor GetIdletime (ms)", () => {
    expect(parseMutterIdletime(fixture("gdbus-mutter-idletime.txt"))).toBe(4242);
    expect(parseMutterIdletime("Error: GDBus.Error:org.freedesktop.DBus.Error.ServiceUnknown: The name is not activatable")).toBeUndefined();
  });
});

describe("on battery", () => {
  it("/sys/class/power_supply: mains online, a discharging battery, none at all", () => {
    expect(parsePowerSupplies([{ type: "Mains\n", online: "1\n" }, { type: "Battery\n", status: "Charging\n" }])).toBe(false);
    expect(parsePowerSupplies([{ type: "Mains\n", online: "0\n" }, { type: "Battery\n", status: "Discharging\n" }])).toBe(true);
    expect(parsePowerSupplies([{ type: "Battery\n", status: "Full\n" }])).toBe(false);
    expect(parsePowerSupplies([])).toBeUndefined();
  });

  it("/sys/class/power_supply trees laid out as on a laptop (AC, BAT0, a USB-C source), read from disk: on battery, then on mains; no tree: cannot tell", async () => {
    const tree = (name: string) => fileURLToPath(new URL(`../fixtures/${name}`, import.meta.url));
    expect(parsePowerSupplies(await sysPowerSupplies(tree("power-supply-laptop-battery")))).toBe(true);
    expect(parsePowerSupplies(await sysPowerSupplies(tree("power-supply-laptop-ac")))).toBe(false);
    expect(parsePowerSupplies(await sysPowerSupplies(tree("no-such-dir")))).toBeUndefined();
  });

  it("pmset -g batt and Win32_Battery BatteryStatus", () => {
    expect(parsePmsetBatt(fixture("pmset-batt-battery.txt"))).toBe(true);
    expect(parsePmsetBatt(fixture("pmset-batt-ac.txt"))).toBe(false);
    expect(parseWin32BatteryStatus(fixture("win32-battery-discharging.txt"))).toBe(true);
    expect(parseWin32BatteryStatus(fixture("win32-battery-ac.txt"))).toBe(false);
    expect(parseWin32BatteryStatus("")).toBeUndefined();
  });
});

describe("the machine probe on recorded outputs", () => {
  const runner = (outputs: Record<string, string>) => async (command: string, args: readonly string[]) => {
    const key = [command, ...args].join(" ");
    const hit = Object.entries(outputs).find(([prefix]) => key.startsWith(prefix));
    return hit ? { code: 0, stdout: hit[1] } : { code: 127, stdout: "" };
  };

  it("Linux desktop with an NVIDIA GPU another process uses, on battery", async () => {
    const probe = createMachineProbe({
      platform: "linux",
      ownPids: new Set([2214]),
      display: { x11: true, wayland: false },
      run: runner({
        xprintidle: fixture("xprintidle.txt"),
        "nvidia-smi --query-compute-apps": fixture("nvidia-smi-compute-apps.csv"),
        "nvidia-smi --query-gpu": fixture("nvidia-smi-utilization.csv"),
      }),
      readPowerSupplies: async () => [{ type: "Mains", online: "0" }, { type: "Battery", status: "Discharging" }],
    });
    expect(await probe.sample()).toEqual({
      inputIdleMs: 4242,
      otherGpuUtil: 0.97,
      onBattery: true,
      sources: { input: "xprintidle", gpu: "nvidia-smi", power: "/sys/class/power_supply" },
    });
  });

  it("GNOME on Wayland: Mutter answers, before XWayland's xprintidle (which sees input to X11 windows only)", async () => {
    const probe = createMachineProbe({
      platform: "linux",
      ownPids: new Set(),
      display: { x11: true, wayland: true },
      run: runner({ "gdbus call --session --dest org.gnome.Mutter.IdleMonitor": fixture("gdbus-mutter-idletime.txt"), xprintidle: "999999\n" }),
      readPowerSupplies: async () => [],
    });
    expect(await probe.sample()).toEqual({ inputIdleMs: 4242, sources: { input: "gdbus Mutter IdleMonitor" } });
  });

  it("sway / Hyprland / Plasma 6 on Wayland: no Mutter, so ext-idle-notify through swayidle; closed with the probe", async () => {
    let line: (l: string) => void = () => {};
    let killed = false;
    let now = 50_000;
    const probe = createMachineProbe({
      platform: "linux",
      ownPids: new Set(),
      display: { x11: false, wayland: true },
      run: runner({}),
      readPowerSupplies: async () => [],
      inputIdleThresholdMs: 5_000,
      now: () => now,
      spawnLines: (): LineProcess => ({ onLine: (l) => void (line = l), onExit: () => {}, kill: () => void (killed = true) }),
    });
    expect(await probe.sample()).toEqual({ inputIdleMs: 0, sources: { input: "swayidle (ext-idle-notify)" } });
    line("idle");
    now += 85_000;
    expect((await probe.sample()).inputIdleMs).toBe(90_000);
    probe.close?.();
    expect(killed).toBe(true);
  });

  it("Wayland with neither Mutter nor swayidle falls back to XWayland's xprintidle, else cannot tell", async () => {
    const gone = (): LineProcess => ({ onLine: () => {}, onExit: (e) => e(), kill: () => {} });
    const withX = createMachineProbe({ platform: "linux", ownPids: new Set(), display: { x11: true, wayland: true }, run: runner({ xprintidle: fixture("xprintidle.txt") }), readPowerSupplies: async () => [], spawnLines: gone });
    expect(await withX.sample()).toEqual({ inputIdleMs: 4242, sources: { input: "xprintidle" } });
    const none = createMachineProbe({ platform: "linux", ownPids: new Set(), display: { x11: false, wayland: true }, run: runner({}), readPowerSupplies: async () => [], spawnLines: gone });
    expect(await none.sample()).toEqual({ sources: {} });
  });

  it("a service with no display of its own reads input through the session's display (systemctl --user), with its variables", async () => {
    const envs: Array<Record<string, string> | undefined> = [];
    const probe = createMachineProbe({
      platform: "linux",
      ownPids: new Set(),
      display: { x11: false, wayland: false },
      run: runner({}),
      session: { read: async () => ({ DISPLAY: ":0", XAUTHORITY: "/run/user/1000/gdm/Xauthority" }) },
      runWithEnv: (env) => async (command, args) => {
        envs.push(env);
        return runner({ xprintidle: fixture("xprintidle.txt") })(command, args);
      },
      readPowerSupplies: async () => [],
    });
    expect(await probe.sample()).toEqual({ inputIdleMs: 4242, sources: { input: "xprintidle (session found through systemctl --user)" } });
    expect(envs).toEqual([{ DISPLAY: ":0", XAUTHORITY: "/run/user/1000/gdm/Xauthority" }]);
    // A Wayland session (not GNOME): swayidle is started with the session's variables.
    const spawned: Array<Record<string, string> | undefined> = [];
    const wayland = createMachineProbe({
      platform: "linux",
      ownPids: new Set(),
      display: { x11: false, wayland: false },
      run: runner({}),
      session: { read: async () => ({ WAYLAND_DISPLAY: "wayland-1", XDG_RUNTIME_DIR: "/run/user/1000" }) },
      runWithEnv: () => runner({}),
      spawnLines: (_command, _args, env): LineProcess => (spawned.push(env), { onLine: () => {}, onExit: () => {}, kill: () => {} }),
      readPowerSupplies: async () => [],
    });
    expect((await wayland.sample()).sources?.input).toBe("swayidle (ext-idle-notify) (session found through systemctl --user)");
    expect(spawned).toEqual([{ WAYLAND_DISPLAY: "wayland-1", XDG_RUNTIME_DIR: "/run/user/1000" }]);
    // No session to find: cannot tell, as before.
    const none = createMachineProbe({ platform: "linux", ownPids: new Set(), display: { x11: false, wayland: false }, run: runner({}), session: { read: async () => undefined }, readPowerSupplies: async () => [] });
    expect(await none.sample()).toEqual({ sources: {} });
  });

  it("a headless server: nothing to read, every signal undefined (cannot tell)", async () => {
    const probe = createMachineProbe({ platform: "linux", ownPids: new Set(), display: { x11: false, wayland: false }, run: runner({}), readPowerSupplies: async () => [] });
    expect(await probe.sample()).toEqual({ sources: {} });
  });

  it("macOS: HIDIdleTime, IOAccelerator, pmset", async () => {
    const probe = createMachineProbe({
      platform: "darwin",
      ownPids: new Set(),
      display: { x11: false, wayland: false },
      run: runner({ "ioreg -c IOHIDSystem": fixture("ioreg-hidsystem.txt"), "ioreg -r": fixture("ioreg-accelerator.txt"), pmset: fixture("pmset-batt-ac.txt") }),
    });
    expect(await probe.sample()).toMatchObject({ inputIdleMs: 95_123, otherGpuUtil: 0.43, onBattery: false });
  });

  it("macOS while this daemon serves: the whole-device GPU reading is its own, so the GPU cannot tell; input and battery still read", async () => {
    let serving = true;
    const asked: string[] = [];
    const outputs: Record<string, string> = { "ioreg -c IOHIDSystem": fixture("ioreg-hidsystem.txt"), "ioreg -r": fixture("ioreg-accelerator.txt"), pmset: fixture("pmset-batt-battery.txt") };
    const probe = createMachineProbe({
      platform: "darwin",
      ownPids: new Set(),
      display: { x11: false, wayland: false },
      ownGpuBusy: () => serving,
      run: async (command, args) => {
        const key = [command, ...args].join(" ");
        asked.push(key);
        const hit = Object.entries(outputs).find(([prefix]) => key.startsWith(prefix));
        return hit ? { code: 0, stdout: hit[1] } : { code: 127, stdout: "" };
      },
    });
    const busy = await probe.sample();
    expect(busy).toEqual({ inputIdleMs: 95_123, onBattery: true, sources: { input: "ioreg HIDIdleTime", power: "pmset" } });
    expect(asked.some((a) => a.startsWith("ioreg -r"))).toBe(false);
    serving = false;
    expect(await probe.sample()).toMatchObject({ otherGpuUtil: 0.43, sources: { gpu: "ioreg IOAccelerator" } });
  });

  it("Windows: GetLastInputInfo and Win32_Battery through PowerShell", async () => {
    const probe = createMachineProbe({
      platform: "win32",
      ownPids: new Set(),
      display: { x11: false, wayland: false },
      run: async (command, args) => {
        if (command !== "powershell") return { code: 127, stdout: "" };
        const script = args.at(-1)!;
        return { code: 0, stdout: script.includes("GetLastInputInfo") ? fixture("win-lastinput.txt") : fixture("win32-battery-discharging.txt") };
      },
    });
    expect(await probe.sample()).toMatchObject({ inputIdleMs: 731, onBattery: true });
  });
});

describe("the probe file (tests only)", () => {
  it("reads the file each time; missing means idle, active means input just now", async () => {
    const path = join(mkdtempSync(join(tmpdir(), "tessera-probe-")), "probe.json");
    const probe = createFileProbe(path);
    expect((await probe.sample()).inputIdleMs).toBe(Number.MAX_SAFE_INTEGER);
    writeFileSync(path, JSON.stringify({ active: true }));
    expect((await probe.sample()).inputIdleMs).toBe(0);
    writeFileSync(path, JSON.stringify({ input_idle_ms: 5000, other_gpu_util: 0.3, on_battery: true }));
    expect(await probe.sample()).toMatchObject({ inputIdleMs: 5000, otherGpuUtil: 0.3, onBattery: true });
  });
});
