import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ManagedProcess, TESSERA_BIN, freePort, startFakeOpenAICompatible, waitUntil } from "@tessera/testkit";

/**
 * Admission as an owner and an operator do it, on a real coordinator process with its default admission (`token`):
 * a node without a token is refused, a join token admits it once, a ban disconnects it, keys rotate.
 */
const ENV = { ...process.env, TESSERA_HOME: "", TESSERA_BACKEND: "", TESSERA_COORDINATOR_URL: "", TESSERA_DB: "", TESSERA_ADMISSION: "", TESSERA_OPEN: "" };
let dir: string;
let coordinator: ManagedProcess;
let url: string;
let backend: Awaited<ReturnType<typeof startFakeOpenAICompatible>>;

/** Runs the CLI without blocking this process: the fake backend the node's commands talk to lives here. */
function tessera(...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [TESSERA_BIN, ...args], { env: ENV, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((resolve) => child.once("close", (code) => resolve({ code, stdout, stderr })));
}
const admin = (...args: string[]) => tessera("coordinator", ...args, "--data-dir", join(dir, "coordinator"));
const json = async <T>(running: ReturnType<typeof tessera>): Promise<T> => {
  const run = await running;
  expect(run.stderr).toBe("");
  expect(run.code).toBe(0);
  return JSON.parse(run.stdout) as T;
};

async function nodeHome(name: string): Promise<string> {
  const home = join(dir, name);
  expect((await tessera("init", "--home", home, "--coordinator", url, "--backend", "vllm", "--vllm-host", backend.url)).code).toBe(0);
  return home;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "tessera-admission-"));
  backend = await startFakeOpenAICompatible({ flavour: "vllm", models: ["tiny-chat"] });
  const port = await freePort();
  url = `http://127.0.0.1:${port}`;
  coordinator = new ManagedProcess("coordinator", process.execPath, [TESSERA_BIN, "coordinator", "start", "--port", String(port), "--data-dir", join(dir, "coordinator")], { env: ENV });
  await coordinator.waitFor(/listening on .*admission: token/);
});
afterAll(async () => {
  await coordinator?.stop();
  await backend?.http.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("admission with the CLI, on a real coordinator", () => {
  it("refuses a node without a join token; a join token admits its operator once", async () => {
    const home = await nodeHome("alice");
    const refused = await tessera("register", "--home", home);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/error \[forbidden\]: this coordinator admits new operators with a join token: `tessera register --join-token TOKEN`/);

    const created = await json<{ id: string; token: string; uses: number }>(admin("join-tokens", "create", "--uses", "1", "--expires", "1h", "--json"));
    expect(created.token).toMatch(/^tsjt_/);
    const admitted = await tessera("register", "--home", home, "--join-token", created.token);
    expect(admitted.stderr).toBe("");
    expect(admitted.stdout).toMatch(/operator +npub1/);

    const bob = await nodeHome("bob");
    const spent = await tessera("register", "--home", bob, "--join-token", created.token);
    expect(spent.stderr).toMatch(/error \[forbidden\]: the join token is not valid here/);
    expect(await json<Array<{ state: string; uses: number }>>(admin("join-tokens", "list", "--json"))).toEqual([expect.objectContaining({ state: "used up", uses: 1 })]);

    const operators = await json<Array<{ npub: string; status: string; admitted_via: string; nodes: number }>>(admin("operators", "list", "--json"));
    expect(operators).toEqual([expect.objectContaining({ status: "active", admitted_via: "token", nodes: 1 })]);
  });

  it("bans an operator: its running daemon is disconnected and stops with the reason", async () => {
    const home = join(dir, "alice");
    const daemon = new ManagedProcess("alice", process.execPath, [TESSERA_BIN, "start", "--home", home], { env: ENV });
    await daemon.waitFor(/session open|registered with/);
    const [operator] = await json<Array<{ npub: string }>>(admin("operators", "list", "--json"));
    const banned = await admin("operators", "ban", operator!.npub, "--reason", "garbage answers");
    expect(banned.stdout).toMatch(/banned npub1.*disconnected within 5 s/);
    await daemon.waitFor(/banned on this coordinator \(garbage answers\)/, 30_000);
    await waitUntil(() => !daemon.running, 30_000);
    const nodes = await json<Array<{ operator_status: string; status: string }>>(admin("nodes", "list", "--json"));
    expect(nodes).toEqual([expect.objectContaining({ operator_status: "banned", status: "offline", tier: "probation", checks: { passed: 0, failed: 0 }, quarantined: false })]);
    // Lifting the ban lets the node back in.
    expect((await admin("operators", "approve", operator!.npub)).code).toBe(0);
    expect((await tessera("register", "--home", home)).code).toBe(0);
  });

  it("rotates a node key: the new key registers under the same operator, the old one is marked rotated", async () => {
    const home = join(dir, "alice");
    const before = await json<{ node: { id: string } }>(tessera("keys", "list", "--home", home, "--json"));
    const rotated = await json<{ previous: string; next: string }>(tessera("keys", "rotate", "--home", home, "--json"));
    expect(rotated.previous).toBe(before.node.id);
    const again = await tessera("register", "--home", home);
    expect(again.stderr).toBe("");
    const nodes = await json<Array<{ id: string; rotated_at?: string; successor?: string }>>(admin("nodes", "list", "--json"));
    expect(nodes.find((n) => n.id === rotated.previous)).toMatchObject({ successor: rotated.next });
    expect((await tessera("keys", "verify", "--home", home)).stdout).toMatch(/^valid: node npub1/);
    const release = await admin("nodes", "release", rotated.next, "--reason", "test");
    expect(release.stdout).toMatch(/^release of npub1\S+ requested: the coordinator lifts its quarantine within 5 s/);
  });

  it("answers bad input with a clear error and changes nothing", async () => {
    const home = join(dir, "alice");
    const cases: Array<[string[], RegExp]> = [
      [["register", "--home", home, "--join-token", "letmein"], /--join-token must be the token/],
      [["coordinator", "join-tokens", "create", "--uses", "0", "--data-dir", join(dir, "coordinator")], /--uses must be a whole number/],
      [["coordinator", "join-tokens", "create", "--expires", "forever", "--data-dir", join(dir, "coordinator")], /--expires must be a duration/],
      [["coordinator", "join-tokens", "revoke", "nope", "--data-dir", join(dir, "coordinator")], /error \[not_found\]/],
      [["coordinator", "operators", "ban", "npub1notakey", "--data-dir", join(dir, "coordinator")], /is not an operator key/],
      [["coordinator", "operators", "approve", "f".repeat(64), "--data-dir", join(dir, "coordinator")], /error \[not_found\]: no operator/],
      [["coordinator", "nodes", "release", "f".repeat(64), "--data-dir", join(dir, "coordinator")], /error \[not_found\]: no node/],
      [["coordinator", "nodes", "release", "nobody", "--data-dir", join(dir, "coordinator")], /is not a node key/],
      [["coordinator", "start", "--admission", "maybe", "--port", "0", "--data-dir", join(dir, "unused")], /--admission \(TESSERA_ADMISSION\) must be one of open, token, approval/],
      [["operator", "delegate", "not-a-key", "--home", home], /is not a node key/],
      [["keys", "verify", join(dir, "forged.json"), "--home", home, "--node", "a".repeat(64)], /error \[unauthorized\]: .*signature/],
      [["keys", "verify", join(dir, "forged.json"), "--home", home], /error \[unauthorized\]: .*another node key/],
    ];
    writeFileSync(join(dir, "forged.json"), JSON.stringify({ node: "a".repeat(64), operator: "b".repeat(64), issued_at: 1, expires_at: 2, signature: "c".repeat(128) }));
    const tokensBefore = (await admin("join-tokens", "list", "--json")).stdout;
    for (const [args, message] of cases) {
      const run = await tessera(...args);
      expect(run.code, args.join(" ")).not.toBe(0);
      expect(run.stderr, args.join(" ")).toMatch(message);
    }
    expect((await admin("join-tokens", "list", "--json")).stdout).toBe(tokensBefore);
  });
});
