import { type ChildProcessByStdio, spawn } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TESSERA_BIN, freePort, startFakeOpenAICompatible } from "@tessera/testkit";

/**
 * `tessera service`, `restart` and `remove` on real processes. The service manager is a fake `systemctl` first on
 * the PATH that records its calls (a test must never enable a real unit on the machine running it); HOME points into
 * a temporary dir, so the unit file lands there.
 */
let dir: string;
let backend: Awaited<ReturnType<typeof startFakeOpenAICompatible>>;
let coordinator: string;
let ENV: NodeJS.ProcessEnv;
const linux = process.platform === "linux";

type Run = { code: number | null; stdout: string; stderr: string };
function collect(child: ChildProcessByStdio<null, Readable, Readable>): Promise<Run> {
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
  child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
  return new Promise((resolve) => child.once("close", (code) => resolve({ code, stdout, stderr })));
}
function tessera(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  return collect(spawn(process.execPath, [TESSERA_BIN, ...args], { env: { ...ENV, ...env }, stdio: ["ignore", "pipe", "pipe"] }));
}
const calls = () => (existsSync(join(dir, "systemctl.log")) ? readFileSync(join(dir, "systemctl.log"), "utf8").trim().split("\n") : []);

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "tessera-service-cli-"));
  const bin = join(dir, "bin");
  mkdirSync(bin);
  writeFileSync(
    join(bin, "systemctl"),
    [
      "#!/bin/sh",
      `echo "$*" >> "${join(dir, "systemctl.log")}"`,
      'if [ -n "$FAKE_NO_BUS" ]; then echo "Failed to connect to bus: No medium found" >&2; exit 1; fi',
      'case "$*" in *is-enabled*) echo enabled;; *is-active*) echo active;; esac',
      "exit 0",
      "",
    ].join("\n"),
  );
  chmodSync(join(bin, "systemctl"), 0o755);
  ENV = { ...process.env, HOME: join(dir, "user"), XDG_CONFIG_HOME: "", XDG_DATA_HOME: "", PATH: `${bin}:${process.env.PATH}`, TESSERA_HOME: "", TESSERA_BACKEND: "", TESSERA_COORDINATOR_URL: "" };
  backend = await startFakeOpenAICompatible({ flavour: "vllm", models: ["tiny-chat"] });
  // No coordinator listens there: a daemon keeps retrying registration and stays up until stopped.
  coordinator = `http://127.0.0.1:${await freePort()}`;
});
afterAll(async () => {
  await backend?.http.close();
  rmSync(dir, { recursive: true, force: true });
});

async function initNode(name: string): Promise<string> {
  const home = join(dir, name);
  const init = await tessera(["init", "--home", home, "--coordinator", coordinator, "--backend", "vllm", "--vllm-host", backend.url]);
  expect(init.code).toBe(0);
  return home;
}

describe.runIf(linux)("tessera service (systemd user unit, fake systemctl)", () => {
  it("--dry-run prints the unit (absolute node and CLI paths, this home) and the commands, and writes nothing", async () => {
    const home = await initNode("dry");
    const run = await tessera(["service", "install", "--home", home, "--dry-run"]);
    expect(run.code).toBe(0);
    const unitFile = join(dir, "user", ".config", "systemd", "user", "tessera-node.service");
    expect(run.stdout).toContain(`# ${unitFile}\n`);
    expect(run.stdout).toContain(`ExecStart=${process.execPath} ${TESSERA_BIN} start --home ${home}\n`);
    expect(run.stdout).toContain("KillSignal=SIGTERM\nKillMode=mixed\nTimeoutStopSec=60\nRestart=on-failure\n");
    expect(run.stdout).toMatch(/# then:\nsystemctl --user daemon-reload\nsystemctl --user enable --now tessera-node.service\n$/);
    expect(existsSync(unitFile)).toBe(false);
    expect(calls()).toEqual([]);
  });

  it("install writes the unit and enables it; status reports it; restart goes through systemctl; uninstall removes it", async () => {
    const home = await initNode("svc");
    const unitFile = join(dir, "user", ".config", "systemd", "user", "tessera-node.service");
    const before = calls().length;
    const install = await tessera(["service", "install", "--home", home]);
    expect(install.stderr).toBe("");
    expect(install.code).toBe(0);
    expect(install.stdout).toContain(`wrote ${unitFile}\nran: systemctl --user daemon-reload\nran: systemctl --user enable --now tessera-node.service\n`);
    expect(install.stdout).toContain("journalctl --user -u tessera-node -f");
    expect(readFileSync(unitFile, "utf8")).toContain(`ExecStart=${process.execPath} ${TESSERA_BIN} start --home ${home}\n`);

    const status = await tessera(["service", "status", "--json"]);
    expect(JSON.parse(status.stdout)).toMatchObject({ kind: "systemd", name: "tessera-node", file: unitFile, installed: true, enabled: true, active: true });
    const text = await tessera(["service", "status"]);
    expect(text.stdout).toMatch(/installed  yes\nenabled    yes\nactive     yes  \(enabled, active\)\n/);

    const restart = await tessera(["restart", "--home", home]);
    expect(restart.code).toBe(0);
    expect(restart.stdout).toContain("ran: systemctl --user restart tessera-node.service\nrestarted the systemd service tessera-node");

    const uninstall = await tessera(["service", "uninstall"]);
    expect(uninstall.code).toBe(0);
    expect(uninstall.stdout).toBe(`ran: systemctl --user disable --now tessera-node.service\nran: systemctl --user daemon-reload\nremoved ${unitFile}\n`);
    expect(existsSync(unitFile)).toBe(false);
    const both = ["--user is-enabled tessera-node.service", "--user is-active tessera-node.service"];
    const made = calls().slice(before);
    expect(made.slice(0, 2)).toEqual(["--user daemon-reload", "--user enable --now tessera-node.service"]);
    expect([...made.slice(2, 4)].sort()).toEqual(both.sort()); // status asks both at once
    expect([...made.slice(4, 6)].sort()).toEqual(both.sort());
    expect(made.slice(6)).toEqual(["--user restart tessera-node.service", "--user disable --now tessera-node.service", "--user daemon-reload"]);
    const again = await tessera(["service", "uninstall"]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/^error \[not_found\]: no systemd service named tessera-node is installed/);
  });

  it("restart and remove for another home leave this home's service alone", async () => {
    const home = await initNode("svc-owner");
    const other = await initNode("svc-other");
    const unitFile = join(dir, "user", ".config", "systemd", "user", "tessera-owned.service");
    expect((await tessera(["service", "install", "--home", home, "--name", "tessera-owned"])).code).toBe(0);
    const before = calls().length;
    const removed = await tessera(["remove", "--home", other, "--name", "tessera-owned", "--yes"]);
    expect(removed.code).toBe(0);
    expect(removed.stdout).not.toContain(unitFile);
    expect(existsSync(unitFile)).toBe(true);
    expect(calls().slice(before)).toEqual([]);
    const third = await initNode("svc-third");
    const taken = await tessera(["service", "install", "--home", third, "--name", "tessera-owned"]);
    expect(taken.code).toBe(1);
    expect(taken.stderr).toMatch(/^error \[conflict\]: .*tessera-owned\.service already runs another node: install this one under another --name/);
    expect(readFileSync(unitFile, "utf8")).toContain(`--home ${home}\n`);
    expect((await tessera(["service", "uninstall", "--name", "tessera-owned"])).code).toBe(0);
  });

  it("without a user systemd (a container) the unit is written and the commands to run are printed", async () => {
    const home = await initNode("nobus");
    const install = await tessera(["service", "install", "--home", home, "--name", "tessera-nobus"], { FAKE_NO_BUS: "1" });
    expect(install.code).toBe(0);
    expect(install.stdout).toContain(
      "the service manager is not usable here (`systemctl --user daemon-reload` failed (exit 1): Failed to connect to bus: No medium found); run these where it is:\n  systemctl --user daemon-reload\n  systemctl --user enable --now tessera-nobus.service\n",
    );
    expect(existsSync(join(dir, "user", ".config", "systemd", "user", "tessera-nobus.service"))).toBe(true);
    const status = await tessera(["service", "status", "--name", "tessera-nobus"], { FAKE_NO_BUS: "1" });
    expect(status.stdout).toMatch(/installed  yes\nenabled    unknown\nactive     unknown\nnote       .*Failed to connect to bus/);
  });

  it("refuses bad input with stable codes and changes nothing", async () => {
    const badName = await tessera(["service", "install", "--name", "bad name", "--dry-run"]);
    expect(badName.code).toBe(2);
    expect(badName.stderr).toMatch(/^error \[bad_request\]: --name must be letters/);
    const unknown = await tessera(["service", "install", "--bogus"]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/unknown option '--bogus'/);
    const noConfig = await tessera(["service", "install", "--home", join(dir, "never-initialised")]);
    expect(noConfig.code).toBe(1);
    expect(noConfig.stderr).toMatch(/^error \[not_found\]: no node config at/);
    const badTimeout = await tessera(["restart", "--home", join(dir, "never-initialised"), "--timeout", "soon"]);
    expect(badTimeout.code).toBe(2);
    expect(badTimeout.stderr).toMatch(/--timeout must be a duration/);
    const help = await tessera(["service", "--help"]);
    expect(help.stdout).toMatch(/install \[options\][\s\S]*uninstall \[options\][\s\S]*status \[options\]/);
  });
});

describe("tessera restart and remove without a service (pid file)", () => {
  it("restart drains the detached daemon and starts a new one; remove refuses while it runs, then --yes --force drains and deletes, keeping the operator key", async () => {
    const home = await initNode("plain");
    const started = await tessera(["start", "--detach", "--home", home]);
    expect(started.code).toBe(0);
    const firstPid = Number(/pid (\d+)/.exec(started.stdout)?.[1]);

    const restarted = await tessera(["restart", "--home", home]);
    expect(restarted.stderr).toBe("");
    expect(restarted.code).toBe(0);
    expect(restarted.stdout).toContain(`stopping the node daemon (pid ${firstPid}): draining…\nstopped\nnode daemon started in the background (pid `);
    const secondPid = Number(readFileSync(join(home, "node.pid"), "utf8"));
    expect(secondPid).not.toBe(firstPid);

    const refused = await tessera(["remove", "--home", home, "--yes"]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(new RegExp(`^error \\[conflict\\]: the node daemon is running \\(pid ${secondPid}\\): stop it first`));
    const noTerminal = await tessera(["remove", "--home", home, "--force"]);
    expect(noTerminal.code).toBe(2);
    expect(noTerminal.stderr).toMatch(/^error \[bad_request\]: no terminal to confirm on: pass --yes/);
    expect(noTerminal.stdout).toContain(`This deletes, from this machine:\n  ${join(home, "node.toml")}`);
    expect(noTerminal.stdout).toContain(join(home, "keys.toml"));
    expect(noTerminal.stdout).toContain("The coordinator has no deregistration API");
    expect(existsSync(join(home, "keys.toml"))).toBe(true);

    expect(existsSync(join(home, "operator.toml"))).toBe(true); // init made an operator key here
    const removed = await tessera(["remove", "--home", home, "--yes", "--force"]);
    expect(removed.stderr).toBe("");
    expect(removed.code).toBe(0);
    expect(removed.stdout).toContain(`kept: ${join(home, "operator.toml")} (your operator key`);
    expect(removed.stdout).toContain(`stopping the node daemon (pid ${secondPid}): draining…\nstopped\n`);
    expect(removed.stdout).toMatch(/removed \d+ items\n$/);
    for (const gone of ["node.toml", "keys.toml", "logs", "node.pid"]) expect(existsSync(join(home, gone))).toBe(false);
    expect(existsSync(join(home, "operator.toml"))).toBe(true);

    const nothing = await tessera(["remove", "--home", join(dir, "empty"), "--yes"]);
    expect(nothing.code).toBe(0);
    expect(nothing.stdout).toMatch(/^nothing to remove/);
  }, 90_000);
});

/** The confirmation needs a terminal: `script` (util-linux) gives the CLI a pseudo-terminal and forwards our typing. */
const hasScript = linux && existsSync("/usr/bin/script");
function onTerminal(command: string, answer: string): Promise<Run> {
  const child = spawn("script", ["-qec", command, "/dev/null"], { env: ENV, stdio: ["pipe", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  let answered = false;
  child.stdout.on("data", (c: Buffer) => {
    stdout += c.toString();
    if (!answered && stdout.includes("to delete them:")) {
      answered = true;
      child.stdin.write(`${answer}\n`);
    }
  });
  child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
  return new Promise((resolve) => child.once("close", (code) => resolve({ code, stdout, stderr })));
}

describe.runIf(hasScript)("tessera remove asks on a terminal", () => {
  it("lists what goes and deletes only when the answer is `remove`", async () => {
    const home = await initNode("asked");
    const line = [process.execPath, TESSERA_BIN, "remove", "--home", home].map((w) => `'${w}'`).join(" ");
    const no = await onTerminal(line, "no");
    expect(no.stdout).toContain(join(home, "keys.toml"));
    expect(no.stdout).toMatch(/error \[cancelled\]: nothing was deleted/);
    expect(no.code).not.toBe(0);
    expect(existsSync(join(home, "keys.toml"))).toBe(true);
    const yes = await onTerminal(line, "remove");
    expect(yes.stdout).toMatch(/removed \d+ items/);
    expect(yes.code).toBe(0);
    // init made an operator key on this machine: the only file left.
    expect(readdirSync(home)).toEqual(["operator.toml"]);
  }, 60_000);
});
