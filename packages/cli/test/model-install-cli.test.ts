import { type ChildProcessByStdio, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { type FakeModelHost, ManagedProcess, TESSERA_BIN, freePort, makeTinyModel, startFakeModelHost } from "@tessera/testkit";

/**
 * Must-show 4 on real processes: `tessera model install` (and `tessera up --model`) with a GGUF from a local HTTP
 * server: progress and speed, a connection dropped mid-download then resumed with a Range request, Ctrl-C keeping the
 * .part for the next run, a checksum mismatch refused; and bad input for every new flag.
 */
const ENV = { ...process.env, TESSERA_HOME: "", TESSERA_BACKEND: "", TESSERA_COORDINATOR_URL: "", TESSERA_MODEL_PATH: "", HF_ENDPOINT: "", HF_TOKEN: "" };
let dir: string;
let model: Buffer;
let host: FakeModelHost | undefined;

type Run = { code: number | null; stdout: string; stderr: string };
function collect(child: ChildProcessByStdio<null, Readable, Readable>): Promise<Run> {
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
  child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
  return new Promise((resolve) => child.once("close", (code) => resolve({ code, stdout, stderr })));
}
function start(args: string[], env: NodeJS.ProcessEnv = {}) {
  return spawn(process.execPath, [TESSERA_BIN, ...args], { env: { ...ENV, ...env }, stdio: ["ignore", "pipe", "pipe"] });
}
const tessera = (args: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> => collect(start(args, env));

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "tessera-model-install-"));
  // The spm vocabulary: the file is served as a chat model by `up` below.
  model = readFileSync((await makeTinyModel({ path: join(dir, "tiny.gguf"), seed: 3, vocab: "spm", name: "tiny-chat" })).path);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));
afterEach(async () => {
  await host?.close();
  host = undefined;
});

let homes = 0;
async function embeddedHome(): Promise<string> {
  const home = join(dir, `node-${++homes}`);
  const init = await tessera(["init", "--home", home, "--backend", "embedded", "--coordinator", `http://127.0.0.1:${await freePort()}`]);
  expect(init.code).toBe(0);
  return home;
}
const toml = (home: string) => readFileSync(join(home, "node.toml"), "utf8");
const modelsDir = (home: string) => join(home, "data", "models");

describe("tessera model install GGUF (real CLI process)", () => {
  it("from the hub listing: a progress bar with speed, a connection dropped mid-download resumed with Range, checked, and node.toml names the file", async () => {
    host = await startFakeModelHost({
      repos: { "tessera/tiny-chat-GGUF": [{ path: "tiny-chat-Q8_0.gguf", bytes: model }] },
      dropAfterBytes: Math.floor(model.length / 2),
      bytesPerTick: 256 * 1024,
      tickMs: 5,
    });
    const home = await embeddedHome();
    const run = await tessera(["model", "install", "hf:tessera/tiny-chat-GGUF:Q8_0", "--home", home, "--hf-endpoint", host.url]);
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);
    const path = join(modelsDir(home), "tiny-chat-Q8_0.gguf");
    expect(run.stdout).toMatch(/^downloading tiny-chat-Q8_0\.gguf  \[[#-]{20}\] +\d+%  /m);
    expect(run.stdout).toMatch(/^downloading tiny-chat-Q8_0\.gguf  \[#{20}\]  100%  \d+\.\d MB \/ \d+\.\d MB  \d+(\.\d)? [kMG]?B\/s$/m);
    expect(run.stdout).toContain(`installed ${path} (`);
    expect(run.stdout).toMatch(/sha256 [0-9a-f]{64}, checked against the published sha256\)/);
    expect(run.stdout).toMatch(/the node advertises "tiny-chat-Q8_0" from its next start \(`npx tessera start --home /);
    const gets = host.requests.filter((r) => r.url.startsWith("/files/"));
    expect(gets.map((r) => r.status)).toEqual([200, 206]);
    expect(gets[1]!.range).toMatch(/^bytes=\d+-$/);
    expect(gets[1]!.ifRange).toMatch(/^"[0-9a-f]{64}"$/);
    expect(readFileSync(path).equals(model)).toBe(true);
    expect(toml(home)).toContain(`model_path = ${JSON.stringify(path)}`);
    expect(readdirSync(modelsDir(home))).toEqual(["tiny-chat-Q8_0.gguf"]);
  }, 60_000);

  it("Ctrl-C mid-download keeps the .part and says so; the same command then resumes it", async () => {
    host = await startFakeModelHost({ files: [{ path: "tiny-chat.gguf", bytes: model }], bytesPerTick: 512 * 1024, tickMs: 150 });
    const home = await embeddedHome();
    const part = join(modelsDir(home), "tiny-chat.gguf.part");
    const child = start(["model", "install", `${host.url}/files/tiny-chat.gguf`, "--home", home]);
    const done = collect(child);
    const deadline = Date.now() + 20_000;
    while (!(existsSync(part) && statSync(part).size > 0) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    child.kill("SIGINT");
    const stopped = await done;
    expect(stopped.code).toBe(1);
    expect(stopped.stderr).toMatch(/^error \[cancelled\]: download interrupted at \d+\.\d MB of \d+\.\d MB; the partial file is kept \(.*tiny-chat\.gguf\.part\): run the same command again to resume\n$/);
    const kept = statSync(part).size;
    expect(kept).toBeGreaterThan(0);
    expect(kept).toBeLessThan(model.length);
    expect(toml(home)).not.toMatch(/^model_path =/m);

    const resumed = await tessera(["model", "install", `${host.url}/files/tiny-chat.gguf`, "--home", home]);
    expect(resumed.code).toBe(0);
    expect(resumed.stdout).toMatch(/installed .*tiny-chat\.gguf \(\d+\.\d MB, resumed from \d+(\.\d)? [kM]B, sha256 [0-9a-f]{64}, no sha256 published: computed\)/);
    expect(host.requests.at(-1)).toMatchObject({ range: `bytes=${kept}-`, status: 206 });
    expect(readFileSync(join(modelsDir(home), "tiny-chat.gguf")).equals(model)).toBe(true);
  }, 60_000);

  it("a checksum mismatch (--sha256) is refused: exit 2, nothing kept, node.toml unchanged", async () => {
    host = await startFakeModelHost({ files: [{ path: "tiny-chat.gguf", bytes: model }] });
    const home = await embeddedHome();
    const before = toml(home);
    const run = await tessera(["model", "install", `${host.url}/files/tiny-chat.gguf`, "--home", home, "--sha256", "0".repeat(64)]);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/^error \[bad_request\]: checksum mismatch for .*: expected sha256 0{64}, got [0-9a-f]{64}; the file was removed, not installed\n$/);
    expect(readdirSync(modelsDir(home))).toEqual([]);
    expect(toml(home)).toBe(before);
  }, 60_000);

  it("errors with stable codes: 404 not_found, an unreachable host, a file that is not a GGUF", async () => {
    host = await startFakeModelHost({ files: [{ path: "page.gguf", bytes: Buffer.from("<html>sign in</html>") }] });
    const home = await embeddedHome();
    const missing = await tessera(["model", "install", `${host.url}/files/none.gguf`, "--home", home]);
    expect(missing.stderr).toMatch(/^error \[not_found\]: .*none\.gguf answered 404: no such file\n$/);
    const closed = await freePort();
    const unreachable = await tessera(["model", "install", "hf:o/r:Q4_K_M", "--home", home], { HF_ENDPOINT: `http://127.0.0.1:${closed}` });
    expect(unreachable.code).toBe(3);
    expect(unreachable.stderr).toMatch(/^error \[unreachable\]: cannot reach the hub at http:\/\/127\.0\.0\.1:\d+: ECONNREFUSED/);
    const page = await tessera(["model", "install", `${host.url}/files/page.gguf`, "--home", home]);
    expect(page.code).toBe(2);
    expect(page.stderr).toMatch(/^error \[bad_request\]: .*page\.gguf is not a GGUF file: it starts with "<htm", not "GGUF" \(an HTML or JSON page/);
    expect(readdirSync(modelsDir(home))).toEqual([]);
  }, 60_000);

  it("bad input for every new flag and reference: exit 2, named, nothing downloaded or written", async () => {
    host = await startFakeModelHost({ files: [{ path: "tiny-chat.gguf", bytes: model }] });
    const home = await embeddedHome();
    const before = toml(home);
    const url = `${host.url}/files/tiny-chat.gguf`;
    const cases: Array<[string[], NodeJS.ProcessEnv, RegExp]> = [
      [["model", "install", url, "--sha256", "abc"], {}, /--sha256 must be 64 hex digits, got "abc"/],
      [["model", "install", "qwen2.5:7b", "--sha256", "a".repeat(64)], {}, /--sha256 checks a GGUF given by URL or hf: reference/],
      [["model", "install", "hf:o/r:Q4_K_M", "--hf-endpoint", "ftp://mirror"], {}, /--hf-endpoint \(HF_ENDPOINT\) must be an http:\/\/ or https:\/\/ URL, got "ftp:\/\/mirror"/],
      [["model", "install", "hf:o/r:Q4_K_M"], { HF_ENDPOINT: "not a url" }, /--hf-endpoint \(HF_ENDPOINT\) must be an http/],
      [["model", "install", "hf:owner"], {}, /invalid model reference "hf:owner": bad repo/],
      [["model", "install", "hf:o/r"], {}, /name a quantisation or a file: hf:owner\/repo:Q4_K_M/],
      [["model", "install", "hf:o/r/notes.txt"], {}, /the file must be a \.gguf/],
      [["model", "install", "https://user:pw@host/x.gguf"], {}, /credentials in the URL are refused/],
      [["model", "install", "qwen2.5:7b"], {}, /the embedded engine installs GGUF files, not "qwen2\.5:7b"/],
    ];
    for (const [args, env, message] of cases) {
      const run = await tessera([...args, "--home", home], env);
      expect(run.code, args.join(" ")).toBe(2);
      expect(run.stderr, args.join(" ")).toMatch(/^error \[bad_request\]: /);
      expect(run.stderr, args.join(" ")).toMatch(message);
    }
    expect(host.requests).toEqual([]);
    expect(existsSync(modelsDir(home))).toBe(false);
    expect(toml(home)).toBe(before);
  }, 120_000);

  it("model recommend: GGUF references on the embedded engine; on vLLM nothing to install, and how to add a model", async () => {
    const home = await embeddedHome();
    const embedded = await tessera(["model", "recommend", "--home", home]);
    expect(embedded.code).toBe(0);
    expect(embedded.stdout).toMatch(/backend embedded/);
    expect(embedded.stdout).toMatch(/^install it: npx tessera model install hf:\S+:Q4_K_M$/m);
    expect(embedded.stdout).not.toMatch(/qwen2\.5:1\.5b|llama3\.1:8b/);
    const vllm = await tessera(["model", "recommend", "--home", home, "--backend", "vllm"]);
    expect(vllm.code).toBe(0);
    expect(vllm.stdout).toMatch(/backend vllm cannot install models through tessera: vLLM loads its model when the server starts/);
    expect(vllm.stdout).not.toMatch(/install it:/);
    const install = await tessera(["model", "install", "hf:o/r:Q4_K_M", "--home", home, "--backend", "vllm"]);
    expect(install.code).toBe(2);
    expect(install.stderr).toMatch(/^error \[bad_request\]: backend vllm cannot install hf:o\/r:Q4_K_M: vLLM loads its model when the server starts/);
  }, 60_000);
});

describe("tessera up --model REF", () => {
  it("downloads the reference into the data dir's models folder and serves it", async () => {
    host = await startFakeModelHost({ repos: { "tessera/tiny-chat-GGUF": [{ path: "tiny-chat-Q8_0.gguf", bytes: model }] } });
    const data = join(dir, "up");
    const port = await freePort();
    const up = new ManagedProcess("up", process.execPath, [TESSERA_BIN, "up", "--port", String(port), "--data-dir", data, "--model", "hf:tessera/tiny-chat-GGUF:Q8_0", "--hf-endpoint", host.url], { env: ENV });
    try {
      await up.waitFor(/Tessera is running/, 120_000);
      expect(up.logText).toMatch(new RegExp(`downloaded: ${join(data, "models", "tiny-chat-Q8_0.gguf").replace(/[.]/g, "\\.")} \\(.*sha256 [0-9a-f]{64}, checked\\)`));
      expect(up.logText).toContain('one node serving "tiny-chat-Q8_0"');
      const models = (await (await fetch(`http://127.0.0.1:${port}/v1/models`)).json()) as { data: { id: string }[] };
      expect(models.data.map((m) => m.id)).toContain("tiny-chat-Q8_0");
    } finally {
      up.kill("SIGINT");
      await up.exited;
    }
    const bad = await tessera(["up", "--port", String(await freePort()), "--data-dir", join(dir, "up-bad"), "--model", "hf:o/r", "--hf-endpoint", host.url]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^error \[bad_request\]: invalid model reference "hf:o\/r"/);
    const badEndpoint = await tessera(["up", "--port", String(await freePort()), "--data-dir", join(dir, "up-bad"), "--hf-endpoint", "nope"]);
    expect(badEndpoint.code).toBe(2);
    expect(badEndpoint.stderr).toMatch(/--hf-endpoint \(HF_ENDPOINT\) must be an http/);
  }, 180_000);
});
