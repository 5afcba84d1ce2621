import { homedir, platform, userInfo } from "node:os";
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
import type { Command } from "commander";
import { TesseraError } from "@tessera/protocol";
import type { NodeConfig } from "@tessera/node/config";
import { printedCommand, systemdUserDir } from "../config.js";
import type { ServiceHost, ServiceRunner, StepsOutcome } from "../service/service-manager.js";
import type { ServiceSpec } from "../service/service-files.js";
import { type NodeFlags, nodeConfigFrom, withHomeOption } from "./node-options.js";

type ServiceFlags = NodeFlags & { name?: string; dryRun?: boolean; json?: boolean };

/** The CLI's bin script, absolute: dist/commands/service.js and src/commands/service.ts both sit two levels below. */
export const CLI_BIN = fileURLToPath(new URL("../../bin/tessera.js", import.meta.url));

export async function productionServiceHost(): Promise<ServiceHost> {
  const { createCommandRunner } = await import("@tessera/node");
  const run: ServiceRunner = createCommandRunner(30_000);
  const userHome = homedir();
  return { platform: platform(), run, uid: userInfo().uid, userHome, systemdUserDir: systemdUserDir(userHome) };
}

export function checkServiceName(name: string | undefined, fallback: string): string {
  const value = name ?? fallback;
  if (!/^[A-Za-z0-9][A-Za-z0-9_.@-]{0,99}$/.test(value)) {
    throw new TesseraError("bad_request", `--name must be letters, digits, '.', '_', '-' or '@' (at most 100), got ${JSON.stringify(value)}`);
  }
  return value;
}

export function defaultServiceName(p: NodeJS.Platform): string {
  return p === "darwin" ? "network.tessera.node" : "tessera-node";
}

/** What the service runs: this node (its home or XDG dirs), on this node binary and this CLI. */
export function serviceSpec(config: NodeConfig, name: string, nodeBin = process.execPath, cliBin = CLI_BIN): ServiceSpec {
  return {
    name,
    nodeBin,
    cliBin,
    home: config.paths.home,
    // Without a home the daemon finds its files through XDG dirs: pin them, the manager's environment may differ.
    xdgConfigHome: config.paths.home === undefined ? dirname(config.paths.configDir) : undefined,
    xdgDataHome: config.paths.home === undefined ? dirname(config.paths.dataDir) : undefined,
    shutdownGraceS: config.shutdown_grace_s,
    logDir: config.paths.logDir,
  };
}

export function printSteps(out: (line: string) => void, steps: StepsOutcome, shellLine: (c: readonly string[]) => string): void {
  for (const c of steps.ran) out(`ran: ${shellLine(c)}`);
  if (steps.manual.length > 0) {
    out(`the service manager is not usable here (${steps.reason}); run these where it is:`);
    for (const c of steps.manual) out(`  ${shellLine(c)}`);
  }
}

const nameOption = (cmd: Command) =>
  cmd.option("--name <name>", "the systemd unit name (default tessera-node) or launchd label (default network.tessera.node); for a second node on this machine");

/** `tessera service install|uninstall|status`: the node daemon as a systemd user service (Linux) or launchd agent (macOS). */
export function addServiceCommand(program: Command, makeHost: () => Promise<ServiceHost> = productionServiceHost): void {
  const service = program
    .command("service")
    .description("run the node daemon under the service manager: a systemd user unit (Linux) or a launchd agent (macOS)");

  withHomeOption(
    nameOption(
      service
        .command("install")
        .description("write the unit/agent file for this node and enable + start it (systemctl --user / launchctl)")
        .option("--dry-run", "print the file and the commands, change nothing"),
    ),
  ).action(async (flags: ServiceFlags) => {
    const host = await makeHost();
    const name = checkServiceName(flags.name, defaultServiceName(host.platform));
    const config = nodeConfigFrom(flags, true);
    const { serviceTarget, installCommands, installService, shellLine } = await import("../service/service-manager.js");
    const target = serviceTarget(serviceSpec(config, name), host);
    const out = (line: string) => process.stdout.write(`${line}\n`);
    if (flags.dryRun) {
      out(`# ${target.file}`);
      process.stdout.write(target.content);
      out("# then:");
      for (const c of installCommands(target, host.uid)) out(shellLine(c));
      return;
    }
    const { readLivePid } = await import("@tessera/node/pid-file");
    const pid = readLivePid(config.paths.pidFile);
    if (pid !== undefined) {
      const homeFlag = config.paths.home !== undefined ? ` --home ${config.paths.home}` : "";
      throw new TesseraError("conflict", `a node daemon already runs for this home outside the service (pid ${pid}): stop it first (\`${printedCommand()} stop${homeFlag}\`), then install`);
    }
    const { existsSync, readFileSync } = await import("node:fs");
    const { serviceRunsHome } = await import("../service/service-files.js");
    if (existsSync(target.file) && !serviceRunsHome(target.kind, readFileSync(target.file, "utf8"), config.paths.home)) {
      throw new TesseraError("conflict", `${target.file} already runs another node: install this one under another --name, or \`${printedCommand()} service uninstall\` that one first`);
    }
    const outcome = await installService(target, host);
    out(`${outcome.unchanged ? "unchanged" : "wrote"} ${target.file}`);
    printSteps(out, outcome, shellLine);
    if (outcome.manual.length === 0) {
      out(
        target.kind === "systemd"
          ? `the node daemon runs as the systemd user service ${name}; logs: journalctl --user -u ${name} -f\nto keep it running while you are logged out: loginctl enable-linger ${userInfo().username}`
          : `the node daemon runs as the launchd agent ${name}; logs: ${config.paths.logDir}/service.err.log and \`${printedCommand()} logs -f\``,
      );
    }
  });

  nameOption(service.command("uninstall").description("stop and disable the service, and remove its file (the node's config, keys and data stay)")).action(
    async (flags: ServiceFlags) => {
      const host = await makeHost();
      const name = checkServiceName(flags.name, defaultServiceName(host.platform));
      const { uninstallService, shellLine } = await import("../service/service-manager.js");
      const outcome = await uninstallService(name, host);
      const out = (line: string) => process.stdout.write(`${line}\n`);
      printSteps(out, outcome, shellLine);
      out(`removed ${outcome.file}`);
    },
  );

  nameOption(service.command("status").description("whether the service is installed, enabled and running").option("--json", "print JSON")).action(
    async (flags: ServiceFlags) => {
      const host = await makeHost();
      const name = checkServiceName(flags.name, defaultServiceName(host.platform));
      const { serviceStatus } = await import("../service/service-manager.js");
      const status = await serviceStatus(name, host);
      if (flags.json) return void process.stdout.write(`${JSON.stringify(status, null, 2)}\n`);
      const yesNo = (v: boolean | undefined) => (v === undefined ? "unknown" : v ? "yes" : "no");
      process.stdout.write(
        [
          `service    ${name} (${status.kind})`,
          `file       ${status.file}${status.installed ? "" : " (absent)"}`,
          `installed  ${yesNo(status.installed)}`,
          `enabled    ${yesNo(status.enabled)}`,
          `active     ${yesNo(status.active)}${status.detail ? `  (${status.detail})` : ""}`,
          ...(status.reason ? [`note       ${status.reason}`] : []),
          "",
        ].join("\n"),
      );
    },
  );
}
