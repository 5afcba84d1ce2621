import { spawn, spawnSync } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { createServer, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { WebSocketServer } from "ws";
import { NodeMessage, SESSION_PATH, splitNodeFrame, verifyRequest, type NodeMessage as NodeMessageType } from "@tessera/protocol";
import { startFakeOpenAICompatible } from "@tessera/testkit";

const BIN = fileURLToPath(new URL("../bin/tessera.js", import.meta.url));
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});
function tmp(): string {
  const dir = mkdtempSync(join(tmpdir(), "tessera-cli-"));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}
const ENV = { ...process.env, TESSERA_HOME: "", TESSERA_BACKEND: "", TESSERA_COORDINATOR_URL: "" };
function tessera(...args: string[]) {
  const result = spawnSync(process.execPath, [BIN, ...args], { encoding: "utf8", env: ENV });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe("tessera init / register / start / logs with bad input", () => {
  it("init makes the node's files and prints its id; logs then reports there is no log yet", () => {
    const home = join(tmp(), "node");
    const init = tessera("init", "--home", home, "--coordinator", "http://127.0.0.1:7999");
    expect(init.code).toBe(0);
    expect(init.stdout).toMatch(/node id +npub1/);
    expect(existsSync(join(home, "node.toml")) && existsSync(join(home, "keys.toml"))).toBe(true);
    const logs = tessera("logs", "--home", home);
    expect(logs.code).not.toBe(0);
    expect(logs.stderr).toMatch(/error \[not_found\]: no log file at/);
    // In a checkout `tessera` is not on the PATH: the commands it prints say `npx tessera …`, which runs as printed.
    const rotate = tessera("keys", "rotate", "--home", home);
    expect(rotate.code).toBe(0);
    expect(rotate.stdout).toContain(`(\`npx tessera register --home ${home}\`, or restart \`npx tessera start --home ${home}\`)`);
  });

  it("a --home that is a file, an unknown backend, a missing or unreadable config: clear error, non-zero exit", () => {
    const dir = tmp();
    writeFileSync(join(dir, "file"), "x");
    const badHome = tessera("init", "--home", join(dir, "file"));
    expect(badHome.code).toBe(2);
    expect(badHome.stderr).toMatch(/error \[bad_request\]: home .* is not a directory/);

    const home = join(dir, "node");
    expect(tessera("init", "--home", home).code).toBe(0);
    const badBackend = tessera("start", "--home", home, "--backend", "quantum");
    expect(badBackend.code).toBe(2);
    expect(badBackend.stderr).toMatch(/invalid backend "quantum" \(from flag --backend\).*TESSERA_BACKEND/);

    const missing = tessera("node", "start", "--home", join(dir, "nowhere"));
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toMatch(/error \[not_found\]: no node config .* run `npx tessera init --home/);

    writeFileSync(join(home, "node.toml"), "backend = = 1\n");
    const broken = tessera("register", "--home", home);
    expect(broken.code).toBe(2);
    expect(broken.stderr).toMatch(/error \[bad_request\]: config .*node\.toml is not valid TOML/);

    if (process.getuid?.() !== 0) {
      writeFileSync(join(home, "node.toml"), 'backend = "ollama"\n');
      chmodSync(join(home, "node.toml"), 0o000);
      const unreadable = tessera("start", "--home", home);
      expect(unreadable.code).toBe(2);
      expect(unreadable.stderr).toMatch(/cannot read config .*EACCES/);
    }
    const lines = tessera("logs", "--home", home, "--lines", "-3");
    expect(lines.code).not.toBe(0);
  });
});

describe("tessera start as a real process", () => {
  it("serves through an OpenAI-compatible backend, logs readable lines, and on SIGTERM says goodbye and exits 0", async () => {
    const backend = await startFakeOpenAICompatible({ flavour: "vllm", models: ["tiny-chat"] });
    cleanups.push(() => backend.http.close());
    const messages: NodeMessageType[] = [];
    let registered = 0;
    let authOk = true;
    const verify = (req: IncomingMessage, body: string) =>
      verifyRequest({
        method: req.method ?? "",
        path: req.url ?? "",
        body,
        authHeader: req.headers["x-tessera-auth"] as string,
        keyHeader: req.headers["x-tessera-key"] as string,
        nowSeconds: Math.floor(Date.now() / 1000),
      }).ok;
    const server = createServer(async (req, res) => {
      let body = "";
      for await (const chunk of req) body += chunk;
      authOk &&= verify(req, body);
      if (req.url === "/api/v1/nodes/register") registered++;
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ node_id: "x", status: "online", heartbeat_interval_s: 30 }));
    });
    const wss = new WebSocketServer({ noServer: true });
    server.on("upgrade", (req, socket, head) => {
      authOk &&= req.url === SESSION_PATH && verify(req, "");
      wss.handleUpgrade(req, socket, head, (ws) => {
        ws.on("message", (data) => messages.push(...splitNodeFrame(data.toString()).map((m) => NodeMessage.parse(m))));
        ws.send(JSON.stringify({
          type: "job.assign", job_id: "j1", model: "tiny-chat",
          messages: [{ role: "user", content: "hi" }], sampling: { max_tokens: 8, temperature: 0, top_p: 1 },
        }));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    cleanups.push(() => new Promise<void>((resolve) => { wss.close(); server.closeAllConnections(); server.close(() => resolve()); }));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

    const home = join(tmp(), "node");
    expect(tessera("init", "--home", home, "--coordinator", url, "--backend", "vllm", "--vllm-host", backend.url).code).toBe(0);
    const child = spawn(process.execPath, [BIN, "start", "--home", home], { env: ENV });
    let stdout = "";
    child.stdout.on("data", (chunk) => (stdout += chunk));
    const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
    cleanups.push(() => void child.kill("SIGKILL"));
    for (let i = 0; i < 600 && !messages.some((m) => m.type === "job.part" && m.part.type === "finish"); i++) {
      await new Promise((r) => setTimeout(r, 25));
    }
    const text = messages.flatMap((m) => (m.type === "job.part" && m.part.type === "text-delta" ? [m.part.text] : [])).join("");
    expect(text).toBe("Hello! You said: hi".split(" ").slice(0, 8).join(" "));
    expect(messages[0]).toEqual({ type: "job.accept", job_id: "j1" });
    child.kill("SIGTERM");
    expect(await exited).toBe(0);
    expect(messages.at(-1)).toEqual({ type: "goodbye" });
    expect(messages.some((m) => m.type === "draining")).toBe(true);
    expect(registered).toBe(1);
    expect(authOk).toBe(true);
    expect(stdout).toMatch(/backend: vllm/);
    expect(stdout).toMatch(/models: tiny-chat/);
    expect(stdout).toMatch(/job complete: \d+ tokens in [\d.]+ s \([\d.]+ tok\/s\)/);
    const log = readFileSync(join(home, "logs", "node.log"), "utf8");
    expect(log).toContain("session open");
    expect(existsSync(join(home, "node.pid"))).toBe(false);
    const logs = tessera("logs", "--home", home, "--lines", "2");
    expect(logs.stdout.trim().split("\n")).toHaveLength(2);
    expect(logs.stdout).toMatch(/stopped/);
  });
});
