import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { TesseraError } from "@tessera/protocol";
import { type ServiceSpec, renderLaunchdPlist, renderSystemdUnit } from "./service-files.js";

/**
 * `tessera service install|uninstall|status` and the service half of `tessera restart`, over an injected command
 * runner: production runs systemctl/launchctl, tests record the calls. A manager that cannot be used here (no
 * systemctl, no user systemd bus in a container, no launchctl) is not an error: the file is still written, and the
 * commands that were not run are returned so the CLI prints them for the user to run where they work.
 */
export interface RunResult {
  code: number;
  stdout: string;
  stderr?: string;
}
export type ServiceRunner = (command: string, args: readonly string[]) => Promise<RunResult>;

export interface ServiceHost {
  platform: NodeJS.Platform;
  run: ServiceRunner;
  /** The user's id, for launchd's `gui/<uid>` domain. */
  uid: number;
  /** The user's home (launch agents live in ~/Library/LaunchAgents). */
  userHome: string;
  /** Where systemd looks for user units: $XDG_CONFIG_HOME/systemd/user, else ~/.config/systemd/user. */
  systemdUserDir: string;
}

export type ServiceKind = "systemd" | "launchd";

export interface ServiceTarget {
  kind: ServiceKind;
  name: string;
  /** The unit or plist file. */
  file: string;
  content: string;
}

export type Command = readonly string[];

export interface StepsOutcome {
  /** Commands that ran and succeeded, in order. */
  ran: Command[];
  /** Commands left to run by hand (the first one failed or its tool is missing), with why. */
  manual: Command[];
  reason?: string;
}

export interface ServiceStatus {
  kind: ServiceKind;
  name: string;
  file: string;
  installed: boolean;
  /** true/false, or undefined when the manager cannot be asked (then `reason` says why). */
  enabled: boolean | undefined;
  active: boolean | undefined;
  /** The manager's own words ("enabled", "inactive", "state = running"…). */
  detail: string;
  reason?: string;
}

export const DEFAULT_SERVICE_NAME = "tessera-node";
/** launchd labels are reverse-DNS by convention. */
export const DEFAULT_LAUNCHD_LABEL = "network.tessera.node";

export function serviceKind(platform: NodeJS.Platform): ServiceKind {
  if (platform === "linux") return "systemd";
  if (platform === "darwin") return "launchd";
  throw new TesseraError("bad_request", `tessera service supports Linux (systemd) and macOS (launchd), not ${platform}; run \`tessera start --detach\` from your system's startup instead`);
}

export function serviceTarget(spec: ServiceSpec, host: ServiceHost): ServiceTarget {
  const kind = serviceKind(host.platform);
  if (kind === "systemd") return { kind, name: spec.name, file: join(host.systemdUserDir, `${spec.name}.service`), content: renderSystemdUnit(spec) };
  return { kind, name: spec.name, file: join(host.userHome, "Library", "LaunchAgents", `${spec.name}.plist`), content: renderLaunchdPlist(spec) };
}

/** Where the service with this name would live, without rendering it (status, uninstall, restart). */
export function serviceLocation(name: string, host: ServiceHost): Omit<ServiceTarget, "content"> {
  const kind = serviceKind(host.platform);
  return kind === "systemd"
    ? { kind, name, file: join(host.systemdUserDir, `${name}.service`) }
    : { kind, name, file: join(host.userHome, "Library", "LaunchAgents", `${name}.plist`) };
}

function systemctl(...args: string[]): Command {
  return ["systemctl", "--user", ...args];
}

export function installCommands(target: Omit<ServiceTarget, "content">, uid: number): Command[] {
  if (target.kind === "systemd") return [systemctl("daemon-reload"), systemctl("enable", "--now", `${target.name}.service`)];
  return [["launchctl", "bootstrap", `gui/${uid}`, target.file]];
}

export function uninstallCommands(target: Omit<ServiceTarget, "content">, uid: number): Command[] {
  if (target.kind === "systemd") return [systemctl("disable", "--now", `${target.name}.service`)];
  return [["launchctl", "bootout", `gui/${uid}/${target.name}`]];
}

/** Stops the daemon (SIGTERM: it drains, within the unit's stop timeout) and starts it again. */
export function restartCommands(target: Omit<ServiceTarget, "content">, uid: number): Command[] {
  if (target.kind === "systemd") return [systemctl("restart", `${target.name}.service`)];
  return [["launchctl", "kickstart", "-k", `gui/${uid}/${target.name}`]];
}

function why(command: Command, result: RunResult): string {
  if (result.code === 127) return `${command[0]} is not installed here`;
  const said = (result.stderr ?? "").trim() || result.stdout.trim();
  return `\`${command.join(" ")}\` failed (exit ${result.code})${said ? `: ${said.split("\n")[0]}` : ""}`;
}

/** Runs the commands in order; at the first failure the rest (and it) are returned for the user to run. */
export async function runSteps(commands: Command[], run: ServiceRunner): Promise<StepsOutcome> {
  const ran: Command[] = [];
  for (let i = 0; i < commands.length; i++) {
    const command = commands[i]!;
    const result = await run(command[0]!, command.slice(1));
    if (result.code !== 0) return { ran, manual: commands.slice(i), reason: why(command, result) };
    ran.push(command);
  }
  return { ran, manual: [] };
}

export interface InstallOutcome extends StepsOutcome {
  target: ServiceTarget;
  /** Whether the file already held this exact content. */
  unchanged: boolean;
}

export async function installService(target: ServiceTarget, host: ServiceHost): Promise<InstallOutcome> {
  const unchanged = existsSync(target.file) && readFileSync(target.file, "utf8") === target.content;
  mkdirSync(dirname(target.file), { recursive: true });
  // Another daemon of this name is replaced: unload the old definition first (launchd refuses a second bootstrap).
  if (target.kind === "launchd" && existsSync(target.file)) await host.run("launchctl", ["bootout", `gui/${host.uid}/${target.name}`]);
  writeFileSync(target.file, target.content, { mode: 0o644 });
  return { target, unchanged, ...(await runSteps(installCommands(target, host.uid), host.run)) };
}

export interface UninstallOutcome extends StepsOutcome {
  file: string;
  removed: boolean;
}

export async function uninstallService(name: string, host: ServiceHost): Promise<UninstallOutcome> {
  const target = serviceLocation(name, host);
  if (!existsSync(target.file)) throw new TesseraError("not_found", `no ${target.kind} service named ${name} is installed (no ${target.file})`);
  const steps = await runSteps(uninstallCommands(target, host.uid), host.run);
  // The file goes even when the manager could not be asked: a stale unit must not start the daemon at next login.
  rmSync(target.file, { force: true });
  if (target.kind === "systemd" && steps.manual.length === 0) {
    const reload = await runSteps([systemctl("daemon-reload")], host.run);
    steps.ran.push(...reload.ran);
    steps.manual.push(...reload.manual);
    steps.reason ??= reload.reason;
  } else if (target.kind === "systemd") steps.manual.push(systemctl("daemon-reload"));
  return { file: target.file, removed: true, ...steps };
}

export async function serviceStatus(name: string, host: ServiceHost): Promise<ServiceStatus> {
  const target = serviceLocation(name, host);
  const installed = existsSync(target.file);
  const base = { kind: target.kind, name, file: target.file, installed };
  if (target.kind === "systemd") {
    const unit = `${name}.service`;
    const [enabled, active] = await Promise.all([host.run("systemctl", ["--user", "is-enabled", unit]), host.run("systemctl", ["--user", "is-active", unit])]);
    // is-enabled/is-active print their answer on stdout and exit non-zero for "disabled"/"inactive"; no answer at
    // all means systemctl could not reach the user manager.
    const e = enabled.stdout.trim().split("\n")[0] ?? "";
    const a = active.stdout.trim().split("\n")[0] ?? "";
    if (enabled.code === 127) return { ...base, enabled: undefined, active: undefined, detail: "", reason: "systemctl is not installed here" };
    if (e === "" && a === "") return { ...base, enabled: undefined, active: undefined, detail: "", reason: why(["systemctl", "--user", "is-enabled", unit], enabled) };
    return { ...base, enabled: e === "enabled" || e === "enabled-runtime", active: a === "active" || a === "reloading" || a === "activating", detail: `${e || "?"}, ${a || "?"}` };
  }
  const printed = await host.run("launchctl", ["print", `gui/${host.uid}/${name}`]);
  if (printed.code === 127) return { ...base, enabled: undefined, active: undefined, detail: "", reason: "launchctl is not installed here" };
  if (printed.code !== 0) return { ...base, enabled: false, active: false, detail: "not loaded" };
  const state = /^\s*state = (.+)$/m.exec(printed.stdout)?.[1]?.trim() ?? "unknown";
  return { ...base, enabled: true, active: state === "running", detail: `loaded, state = ${state}` };
}

/** A command as the user would type it in a POSIX shell. */
export function shellLine(command: Command): string {
  return command.map((w) => (/^[A-Za-z0-9_@%+=:,./-]+$/.test(w) ? w : `'${w.replace(/'/g, "'\\''")}'`)).join(" ");
}
