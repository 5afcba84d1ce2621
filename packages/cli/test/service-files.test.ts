import { execFile } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { renderLaunchdPlist, renderSystemdUnit, serviceRunsHome, stopTimeoutS, systemdWord, type ServiceSpec } from "../src/service/service-files.js";
import {
  type RunResult,
  type ServiceHost,
  installService,
  restartCommands,
  serviceStatus,
  serviceTarget,
  uninstallService,
} from "../src/service/service-manager.js";

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "tessera-service-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const spec = (over: Partial<ServiceSpec> = {}): ServiceSpec => ({
  name: "tessera-node",
  nodeBin: "/usr/bin/node",
  cliBin: "/opt/tessera/packages/cli/bin/tessera.js",
  home: "/home/ada/tessera node",
  shutdownGraceS: 30,
  logDir: "/home/ada/tessera node/logs",
  ...over,
});

/** A recording runner: answers from a table keyed by the command line, 0/"" otherwise. */
function recorder(answers: Record<string, RunResult> = {}): { calls: string[]; run: ServiceHost["run"] } {
  const calls: string[] = [];
  return {
    calls,
    run: async (command, args) => {
      const line = [command, ...args].join(" ");
      calls.push(line);
      return answers[line] ?? { code: 0, stdout: "" };
    },
  };
}

function host(platform: NodeJS.Platform, run: ServiceHost["run"]): ServiceHost {
  return { platform, run, uid: 501, userHome: join(dir, `home-${platform}`), systemdUserDir: join(dir, `home-${platform}`, ".config", "systemd", "user") };
}

describe("systemd unit", () => {
  it("runs `node tessera.js start --home …` in the foreground, drains on SIGTERM within grace + 30 s, logs to the journal", () => {
    expect(renderSystemdUnit(spec())).toBe(
      [
        "# Written by `tessera service install`; `tessera service uninstall` removes it.",
        "[Unit]",
        "Description=Tessera node daemon (/home/ada/tessera node)",
        "Wants=network-online.target",
        "After=network-online.target",
        "",
        "[Service]",
        "Type=simple",
        'ExecStart=/usr/bin/node /opt/tessera/packages/cli/bin/tessera.js start --home "/home/ada/tessera node"',
        "KillSignal=SIGTERM",
        "KillMode=mixed",
        "TimeoutStopSec=60",
        "Restart=on-failure",
        "RestartSec=5",
        "StandardOutput=journal",
        "StandardError=journal",
        "SyslogIdentifier=tessera-node",
        "",
        "[Install]",
        "WantedBy=default.target",
        "",
      ].join("\n"),
    );
  });

  it("without a home pins the XDG dirs the daemon reads; the stop timeout follows shutdown_grace_s", () => {
    const unit = renderSystemdUnit(spec({ home: undefined, xdgConfigHome: "/home/ada/.config", xdgDataHome: "/home/ada/.local/share", shutdownGraceS: 120 }));
    expect(unit).toContain("ExecStart=/usr/bin/node /opt/tessera/packages/cli/bin/tessera.js start\n");
    expect(unit).toContain("Environment=XDG_CONFIG_HOME=/home/ada/.config\nEnvironment=XDG_DATA_HOME=/home/ada/.local/share\n");
    expect(unit).toContain("TimeoutStopSec=150\n");
    expect(stopTimeoutS(0.5)).toBe(31);
  });

  it("quotes words the way systemd reads them: spaces, quotes, backslashes, % specifiers and $ expansion", () => {
    expect(systemdWord("/plain/path-1.2")).toBe("/plain/path-1.2");
    expect(systemdWord('/a b/"c"\\d')).toBe('"/a b/\\"c\\"\\\\d"');
    expect(systemdWord("/data/100%/$HOME")).toBe('"/data/100%%/$$HOME"');
    expect(systemdWord("")).toBe('""');
  });

  it("passes `systemd-analyze verify` (when this machine has it)", async (ctx) => {
    const analyze = await new Promise<boolean>((r) => execFile("systemd-analyze", ["--version"], (err) => r(!err)));
    if (!analyze) {
      console.log("NOTICE: systemd-analyze is not installed here; the unit was not verified by systemd");
      return ctx.skip();
    }
    // ExecStart must name files that exist: this node and the checkout's bin script, under a home with a space.
    const home = join(dir, "verify home");
    const unitDir = join(dir, "units");
    mkdirSync(unitDir, { recursive: true });
    const cliBin = join(__dirname, "..", "bin", "tessera.js");
    const units = {
      "tessera-node.service": renderSystemdUnit(spec({ nodeBin: process.execPath, cliBin, home, logDir: join(home, "logs") })),
      "tessera-xdg.service": renderSystemdUnit(spec({ name: "tessera-xdg", nodeBin: process.execPath, cliBin, home: undefined, xdgConfigHome: join(dir, "c 100%"), xdgDataHome: join(dir, "d$x") })),
    };
    const runtime = join(dir, "runtime");
    mkdirSync(runtime, { recursive: true, mode: 0o700 });
    for (const [file, text] of Object.entries(units)) {
      writeFileSync(join(unitDir, file), text);
      const result = await new Promise<{ code: number; stderr: string }>((resolve) =>
        execFile("systemd-analyze", ["verify", "--user", join(unitDir, file)], { env: { ...process.env, XDG_RUNTIME_DIR: runtime } }, (err, _out, stderr) =>
          resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stderr }),
        ),
      );
      // Unknown keys and bad values are warnings on stderr with exit 0: any line about the unit is a failure.
      expect({ file, ...result, stderr: result.stderr.split("\n").filter((l) => l.includes(file)) }).toEqual({ file, code: 0, stderr: [] });
    }
  });
});

describe("launchd agent", () => {
  it("is a plist running the same command, restarted on failure only, SIGTERM then ExitTimeOut, logs in the log dir", () => {
    const plist = renderLaunchdPlist(spec({ name: "network.tessera.node", home: "/Users/ada/t&n" , logDir: "/Users/ada/t&n/logs" }));
    expect(plist).toBe(
      [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">',
        "<!-- Written by `tessera service install`; `tessera service uninstall` removes it. -->",
        '<plist version="1.0">',
        "<dict>",
        "  <key>Label</key>",
        "  <string>network.tessera.node</string>",
        "  <key>ProgramArguments</key>",
        "  <array>",
        "    <string>/usr/bin/node</string>",
        "    <string>/opt/tessera/packages/cli/bin/tessera.js</string>",
        "    <string>start</string>",
        "    <string>--home</string>",
        "    <string>/Users/ada/t&amp;n</string>",
        "  </array>",
        "  <key>RunAtLoad</key>",
        "  <true/>",
        "  <key>KeepAlive</key>",
        "  <dict>",
        "    <key>SuccessfulExit</key>",
        "    <false/>",
        "  </dict>",
        "  <key>ThrottleInterval</key>",
        "  <integer>5</integer>",
        "  <key>ExitTimeOut</key>",
        "  <integer>60</integer>",
        "  <key>ProcessType</key>",
        "  <string>Background</string>",
        "  <key>StandardOutPath</key>",
        "  <string>/Users/ada/t&amp;n/logs/service.out.log</string>",
        "  <key>StandardErrorPath</key>",
        "  <string>/Users/ada/t&amp;n/logs/service.err.log</string>",
        "</dict>",
        "</plist>",
        "",
      ].join("\n"),
    );
  });

  it("without a home carries the XDG dirs as EnvironmentVariables", () => {
    const plist = renderLaunchdPlist(spec({ home: undefined, xdgConfigHome: "/Users/ada/.config", xdgDataHome: "/Users/ada/.local/share" }));
    expect(plist).toContain(
      "  <key>EnvironmentVariables</key>\n  <dict>\n    <key>XDG_CONFIG_HOME</key>\n    <string>/Users/ada/.config</string>\n    <key>XDG_DATA_HOME</key>\n    <string>/Users/ada/.local/share</string>\n  </dict>\n",
    );
  });
});

describe("service manager through an injected runner", () => {
  it("systemd: install writes the unit and runs daemon-reload + enable --now; status asks is-enabled/is-active; uninstall disables and removes", async () => {
    const rec = recorder({
      "systemctl --user is-enabled tessera-node.service": { code: 0, stdout: "enabled\n" },
      "systemctl --user is-active tessera-node.service": { code: 0, stdout: "active\n" },
    });
    const h = host("linux", rec.run);
    const target = serviceTarget(spec(), h);
    expect(target.file).toBe(join(h.systemdUserDir, "tessera-node.service"));
    const installed = await installService(target, h);
    expect(installed).toMatchObject({ unchanged: false, manual: [] });
    expect(readFileSync(target.file, "utf8")).toBe(renderSystemdUnit(spec()));
    expect(rec.calls).toEqual(["systemctl --user daemon-reload", "systemctl --user enable --now tessera-node.service"]);
    expect((await installService(target, h)).unchanged).toBe(true);

    rec.calls.length = 0;
    expect(await serviceStatus("tessera-node", h)).toMatchObject({ kind: "systemd", installed: true, enabled: true, active: true, detail: "enabled, active" });
    expect(restartCommands(target, h.uid)).toEqual([["systemctl", "--user", "restart", "tessera-node.service"]]);

    rec.calls.length = 0;
    const removed = await uninstallService("tessera-node", h);
    expect(rec.calls).toEqual(["systemctl --user disable --now tessera-node.service", "systemctl --user daemon-reload"]);
    expect(removed.manual).toEqual([]);
    expect(existsSync(target.file)).toBe(false);
    await expect(uninstallService("tessera-node", h)).rejects.toMatchObject({ code: "not_found" });
  });

  it("systemd without a user manager (a container): the file is written and the commands come back to run by hand", async () => {
    const rec = recorder({ "systemctl --user daemon-reload": { code: 1, stdout: "", stderr: "Failed to connect to bus: No medium found\n" } });
    const h = host("linux", rec.run);
    const outcome = await installService(serviceTarget(spec({ name: "t-nobus" }), h), h);
    expect(outcome.ran).toEqual([]);
    expect(outcome.manual).toEqual([
      ["systemctl", "--user", "daemon-reload"],
      ["systemctl", "--user", "enable", "--now", "t-nobus.service"],
    ]);
    expect(outcome.reason).toBe("`systemctl --user daemon-reload` failed (exit 1): Failed to connect to bus: No medium found");
    expect(existsSync(outcome.target.file)).toBe(true);
    const status = await serviceStatus("t-nobus", host("linux", recorder({
      "systemctl --user is-enabled t-nobus.service": { code: 1, stdout: "", stderr: "Failed to connect to bus: No medium found" },
      "systemctl --user is-active t-nobus.service": { code: 1, stdout: "", stderr: "Failed to connect to bus: No medium found" },
    }).run));
    expect(status).toMatchObject({ installed: true, enabled: undefined, active: undefined });
    expect(status.reason).toMatch(/Failed to connect to bus/);
    const missing = await installService(serviceTarget(spec({ name: "t-none" }), h), host("linux", recorder({ "systemctl --user daemon-reload": { code: 127, stdout: "" } }).run));
    expect(missing.reason).toBe("systemctl is not installed here");
  });

  it("systemd status of an installed but stopped, disabled unit", async () => {
    const h = host("linux", recorder({
      "systemctl --user is-enabled t-off.service": { code: 1, stdout: "disabled\n" },
      "systemctl --user is-active t-off.service": { code: 3, stdout: "inactive\n" },
    }).run);
    expect(await serviceStatus("t-off", h)).toMatchObject({ installed: false, enabled: false, active: false, detail: "disabled, inactive" });
  });

  it("launchd: install bootstraps into gui/<uid>, status reads launchctl print, uninstall boots it out", async () => {
    const printed = readFileSync(join(__dirname, "fixtures", "launchctl-print-running.txt"), "utf8");
    const rec = recorder({ "launchctl print gui/501/network.tessera.node": { code: 0, stdout: printed } });
    const h = host("darwin", rec.run);
    const target = serviceTarget(spec({ name: "network.tessera.node" }), h);
    expect(target.file).toBe(join(h.userHome, "Library", "LaunchAgents", "network.tessera.node.plist"));
    await installService(target, h);
    expect(rec.calls).toEqual([`launchctl bootstrap gui/501 ${target.file}`]);
    expect(await serviceStatus("network.tessera.node", h)).toMatchObject({ kind: "launchd", installed: true, enabled: true, active: true, detail: "loaded, state = running" });
    expect(restartCommands(target, 501)).toEqual([["launchctl", "kickstart", "-k", "gui/501/network.tessera.node"]]);
    rec.calls.length = 0;
    await installService(target, h); // a second install replaces the loaded agent
    expect(rec.calls).toEqual(["launchctl bootout gui/501/network.tessera.node", `launchctl bootstrap gui/501 ${target.file}`]);
    rec.calls.length = 0;
    await uninstallService("network.tessera.node", h);
    expect(rec.calls).toEqual(["launchctl bootout gui/501/network.tessera.node"]);
    expect(existsSync(target.file)).toBe(false);
    const gone = await serviceStatus("network.tessera.node", host("darwin", recorder({ "launchctl print gui/501/network.tessera.node": { code: 113, stdout: "Could not find service" } }).run));
    expect(gone).toMatchObject({ installed: false, enabled: false, active: false });
  });

  it("refuses platforms without a supported manager by code", () => {
    expect(() => serviceTarget(spec(), host("win32", recorder().run))).toThrow(expect.objectContaining({ code: "bad_request" }));
  });
});

describe("which node an installed service runs", () => {
  it.each([
    ["systemd", renderSystemdUnit] as const,
    ["launchd", renderLaunchdPlist] as const,
  ])("%s: matches its own home only (restart and remove never act on another node's service)", (kind, render) => {
    const withHome = render(spec({ home: "/home/ada/tessera node" }));
    expect(serviceRunsHome(kind, withHome, "/home/ada/tessera node")).toBe(true);
    expect(serviceRunsHome(kind, withHome, "/home/ada/tessera")).toBe(false);
    expect(serviceRunsHome(kind, withHome, undefined)).toBe(false);
    const xdg = render(spec({ home: undefined, xdgConfigHome: "/home/ada/.config", xdgDataHome: "/home/ada/.local/share" }));
    expect(serviceRunsHome(kind, xdg, undefined)).toBe(true);
    expect(serviceRunsHome(kind, xdg, "/home/ada/tessera node")).toBe(false);
    expect(serviceRunsHome(kind, "", undefined)).toBe(false);
  });
});

