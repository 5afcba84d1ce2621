/**
 * The files that run a node daemon under the user's service manager: a systemd user unit (Linux) and a launchd agent
 * (macOS). Pure: everything the files name is passed in, so tests compare them byte for byte.
 *
 * Both run `<node> <tessera.js> start [--home DIR]` in the foreground; the manager sends SIGTERM to stop it, which
 * drains (jobs finish or move to other nodes), and waits `stopTimeoutS` before killing it.
 */
export interface ServiceSpec {
  /** systemd unit name without `.service`, or the launchd label. */
  name: string;
  /** Absolute path of the node binary (process.execPath). */
  nodeBin: string;
  /** Absolute path of the CLI's bin script (packages/cli/bin/tessera.js). */
  cliBin: string;
  /** `--home` when the node has one; else the XDG dirs below pin where its config and data are. */
  home: string | undefined;
  /** XDG_CONFIG_HOME / XDG_DATA_HOME the daemon must see (only without a home). */
  xdgConfigHome?: string;
  xdgDataHome?: string;
  /** The daemon's drain grace (shutdown_grace_s): the stop timeout adds a margin to it. */
  shutdownGraceS: number;
  /** launchd only: where stdout and stderr go (launchd has no journal). */
  logDir: string;
}

/** Seconds the manager waits after SIGTERM: the drain grace plus time to say goodbye and close the backend. */
export function stopTimeoutS(shutdownGraceS: number): number {
  return Math.ceil(shutdownGraceS) + 30;
}

export function daemonArgs(spec: ServiceSpec): string[] {
  return [spec.nodeBin, spec.cliBin, "start", ...(spec.home !== undefined ? ["--home", spec.home] : [])];
}

function daemonEnv(spec: ServiceSpec): Array<[string, string]> {
  const env: Array<[string, string]> = [];
  if (spec.home === undefined && spec.xdgConfigHome !== undefined) env.push(["XDG_CONFIG_HOME", spec.xdgConfigHome]);
  if (spec.home === undefined && spec.xdgDataHome !== undefined) env.push(["XDG_DATA_HOME", spec.xdgDataHome]);
  return env;
}

/**
 * One ExecStart/Environment word, quoted as systemd.service(5) "Command lines" reads it: double quotes when needed,
 * `\` and `"` escaped, `%` doubled (specifiers) and `$` doubled (variable expansion).
 */
export function systemdWord(word: string): string {
  const escaped = word.replace(/%/g, "%%").replace(/\$/g, "$$$$");
  if (escaped !== "" && /^[A-Za-z0-9_@%+=:,./-]+$/.test(escaped)) return escaped;
  return `"${escaped.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;
}

export function renderSystemdUnit(spec: ServiceSpec): string {
  const lines = [
    "# Written by `tessera service install`; `tessera service uninstall` removes it.",
    "[Unit]",
    `Description=Tessera node daemon${spec.home !== undefined ? ` (${spec.home.replace(/%/g, "%%")})` : ""}`,
    "Wants=network-online.target",
    "After=network-online.target",
    "",
    "[Service]",
    "Type=simple",
    `ExecStart=${daemonArgs(spec).map(systemdWord).join(" ")}`,
    ...daemonEnv(spec).map(([k, v]) => `Environment=${systemdWord(`${k}=${v}`)}`),
    // SIGTERM drains the node; only the main process gets it, children (a llama-server it spawned) get SIGKILL late.
    "KillSignal=SIGTERM",
    "KillMode=mixed",
    `TimeoutStopSec=${stopTimeoutS(spec.shutdownGraceS)}`,
    "Restart=on-failure",
    "RestartSec=5",
    "StandardOutput=journal",
    "StandardError=journal",
    `SyslogIdentifier=${spec.name}`,
    "",
    "[Install]",
    "WantedBy=default.target",
    "",
  ];
  return lines.join("\n");
}

function xml(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

export function renderLaunchdPlist(spec: ServiceSpec): string {
  const env = daemonEnv(spec);
  const lines = [
    '<?xml version="1.0" encoding="UTF-8"?>',
    '<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">',
    "<!-- Written by `tessera service install`; `tessera service uninstall` removes it. -->",
    '<plist version="1.0">',
    "<dict>",
    "  <key>Label</key>",
    `  <string>${xml(spec.name)}</string>`,
    "  <key>ProgramArguments</key>",
    "  <array>",
    ...daemonArgs(spec).map((arg) => `    <string>${xml(arg)}</string>`),
    "  </array>",
    ...(env.length > 0
      ? ["  <key>EnvironmentVariables</key>", "  <dict>", ...env.flatMap(([k, v]) => [`    <key>${xml(k)}</key>`, `    <string>${xml(v)}</string>`]), "  </dict>"]
      : []),
    "  <key>RunAtLoad</key>",
    "  <true/>",
    // Restart when it fails (non-zero exit), not after a clean `tessera stop`.
    "  <key>KeepAlive</key>",
    "  <dict>",
    "    <key>SuccessfulExit</key>",
    "    <false/>",
    "  </dict>",
    "  <key>ThrottleInterval</key>",
    "  <integer>5</integer>",
    // launchd sends SIGTERM, then SIGKILL after ExitTimeOut seconds.
    "  <key>ExitTimeOut</key>",
    `  <integer>${stopTimeoutS(spec.shutdownGraceS)}</integer>`,
    "  <key>ProcessType</key>",
    "  <string>Background</string>",
    "  <key>StandardOutPath</key>",
    `  <string>${xml(`${spec.logDir}/service.out.log`)}</string>`,
    "  <key>StandardErrorPath</key>",
    `  <string>${xml(`${spec.logDir}/service.err.log`)}</string>`,
    "</dict>",
    "</plist>",
    "",
  ];
  return lines.join("\n");
}

/**
 * Whether an installed unit or plist runs the node of this home (`--home DIR`, or none: the XDG dirs), so that
 * `restart` and `remove` for one home never act on another node's service of the same name.
 */
export function serviceRunsHome(kind: "systemd" | "launchd", content: string, home: string | undefined): boolean {
  if (kind === "systemd") {
    const exec = /^ExecStart=(.*)$/m.exec(content)?.[1]?.trimEnd();
    if (exec === undefined) return false;
    return home === undefined ? / start$/.test(exec) : exec.endsWith(` start --home ${systemdWord(home)}`);
  }
  const args = [...(/<key>ProgramArguments<\/key>\s*<array>([\s\S]*?)<\/array>/.exec(content)?.[1] ?? "").matchAll(/<string>([\s\S]*?)<\/string>/g)].map((m) => m[1]!);
  const tail = args.slice(args.lastIndexOf("start"));
  return home === undefined ? tail.length === 1 : tail.length === 3 && tail[1] === "--home" && tail[2] === xml(home);
}
