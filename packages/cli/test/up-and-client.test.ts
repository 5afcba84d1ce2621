import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { once } from "node:events";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { encodeNpub } from "@tessera/protocol";
import { ManagedProcess, TESSERA_BIN, freePort } from "@tessera/testkit";

/** `tessera up` as a newcomer runs it, then the client commands against it; and the CLI's answers to bad input. */
let dir: string;
let up: ManagedProcess;
let url: string;

async function tessera(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; out: string }> {
  const p = new ManagedProcess("tessera", process.execPath, [TESSERA_BIN, ...args], { env: { ...process.env, ...env } });
  const { code } = await p.exited;
  return { code, out: p.logText };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "tessera-up-"));
  const port = await freePort();
  url = `http://127.0.0.1:${port}`;
  up = new ManagedProcess("up", process.execPath, [TESSERA_BIN, "up", "--port", String(port), "--data-dir", dir]);
  await up.waitFor(/Tessera is running/, 120_000);
}, 150_000);

afterAll(async () => {
  await up?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("tessera up", () => {
  it("makes the demo model on first run and prints how to call it", () => {
    expect(up.logText).toMatch(/making the demo model/);
    // From the checkout, where `tessera` is not on the PATH, the banner's chat line goes through the workspace bin.
    expect(up.logText).toContain('  npx tessera chat "hello"\n');
    expect(up.logText).toContain(`curl ${url}/v1/chat/completions`);
    expect(up.logText).toContain('model: "tessera-demo"');
  });

  it("answers `tessera chat` streaming and not, and lists the model", async () => {
    const streamed = await tessera(["chat", "--url", url, "--max-tokens", "12", "--temperature", "0", "hello"]);
    expect(streamed.code).toBe(0);
    expect(streamed.out.trim().length).toBeGreaterThan(0);
    const json = await tessera(["chat", "--url", url, "--max-tokens", "12", "--temperature", "0", "--json", "hello"]);
    expect(json.code).toBe(0);
    const job = JSON.parse(json.out);
    expect(job.status).toBe("completed");
    expect(job.result.content.trim()).toBe(streamed.out.trim());
    expect(job.result.usage.completion_tokens).toBeGreaterThan(0);
    const models = await tessera(["models", "--url", url, "--json"]);
    // The demo network serves an embedding model too, on a second node (up-embeddings.ts).
    expect(JSON.parse(models.out).models).toEqual([expect.objectContaining({ id: "tessera-demo", nodes: 1 }), expect.objectContaining({ id: "tessera-demo-embed", nodes: 1 })]);
    const embeddings = await fetch(`${url}/v1/embeddings`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ model: "tessera-demo-embed", input: ["hello", "world"] }) });
    expect(((await embeddings.json()) as { data: { embedding: number[] }[] }).data.map((d) => d.embedding.length)).toEqual([64, 64]);
    const status = await tessera(["status", "--url", url]);
    expect(status.out).toMatch(/coordinator\s+ok/);
    // The node id as the node's log shows it (npub1…) is taken as it is.
    const npub = up.logText.match(/\b(npub1[0-9a-z]+)\b/)?.[1];
    expect(npub).toBeDefined();
    const node = await tessera(["status", "--url", url, "--node", npub!, "--json"]);
    expect(JSON.parse(node.out).node).toMatchObject({ status: "online" });
  }, 60_000);

  it("stops cleanly on SIGINT", async () => {
    up.kill("SIGINT");
    expect((await up.exited).code).toBe(0);
  }, 60_000);
});

/** A well-formed node id with its last bech32 character changed: the checksum no longer matches. */
const GOOD_NPUB = encodeNpub("ab".repeat(32));
const BAD_NPUB = GOOD_NPUB.slice(0, -1) + (GOOD_NPUB.endsWith("q") ? "p" : "q");

describe("bad input gets a clear error and a non-zero exit", () => {
  const cases: Array<[string, string[], RegExp]> = [
    ["up with a missing model file", ["up", "--model", "/nonexistent/model.gguf", "--port", "1"], /\[bad_request\].*no file/],
    ["up with a bad port", ["up", "--port", "http", "--data-dir", "/tmp/tessera-never"], /\[bad_request\].*--port/],
    ["coordinator start with a non-postgres --db", ["coordinator", "start", "--db", "mysql://x"], /\[bad_request\].*--db/],
    ["coordinator start with a non-postgres --db holding a password", ["coordinator", "start", "--db", "mysql://root:hunter2@db:3306/x"], /\[bad_request\]: --db \(TESSERA_DB\) must be a postgres:\/\/ URL, got "mysql:\/\/\*\*\*@db:3306\/x"/],
    ["coordinator start with a --bus that is not nats://", ["coordinator", "start", "--db", "postgres://127.0.0.1:1/x", "--bus", "http://127.0.0.1:4222"], /\[bad_request\]: --bus \(TESSERA_BUS\) must be nats:\/\/\[user:password@ or token@\]host:port/],
    // A malformed --bus with credentials is refused without its password in the message.
    ["coordinator start with a malformed --bus holding a password", ["coordinator", "start", "--db", "postgres://127.0.0.1:1/x", "--bus", "nats://replica:hunter2@127.0.0.1:4222/x"], /\[bad_request\]: --bus \(TESSERA_BUS\) must be .*got "nats:\/\/\*\*\*@127\.0\.0\.1:4222\/x"/],
    ["coordinator start with a --bus path", ["coordinator", "start", "--db", "postgres://127.0.0.1:1/x", "--bus", "nats://127.0.0.1:4222/x"], /\[bad_request\]: --bus \(TESSERA_BUS\) must be/],
    ["coordinator start with --bus on SQLite", ["coordinator", "start", "--bus", "nats://127.0.0.1:4222"], /\[bad_request\]: --bus \(TESSERA_BUS\) needs --db postgres/],
    ["keys create without --name", ["coordinator", "keys", "create"], /--name/],
    ["keys create with a bad name", ["coordinator", "keys", "create", "--name", "a b"], /\[bad_request\]/],
    ["keys create with a bad rate limit", ["coordinator", "keys", "create", "--name", "ok", "--rate-limit", "-3"], /\[bad_request\]/],
    ["keys revoke of an unknown key", ["coordinator", "keys", "revoke", "nobody"], /\[not_found\]/],
    ["chat with an empty prompt", ["chat", ""], /\[bad_request\].*empty/],
    ["chat with a bad temperature", ["chat", "--temperature", "9", "hi"], /\[bad_request\].*temperature/],
    ["chat against a bad url", ["chat", "--url", "ftp://x", "hi"], /\[bad_request\].*--url/],
    ["models against nothing listening", ["models", "--url", "http://127.0.0.1:2"], /\[unreachable\]: coordinator unreachable at http:\/\/127\.0\.0\.1:2: connection refused \(is it running\? `npx tessera up` starts one here\)/],
    ["status with a node id that is neither npub nor hex", ["status", "--node", "nobody"], /\[bad_request\].*--node/],
    ["an unknown command", ["fly"], /unknown command/],
  ];
  it("status --node with a bad npub1… is a usage error (exit 2, code bad_request) before anything is asked of the coordinator", async () => {
    const { code, out } = await tessera(["status", "--url", "http://127.0.0.1:2", "--node", BAD_NPUB]);
    expect(code).toBe(2);
    expect(out).toMatch(/^error \[bad_request\]: --node must be a node id: npub1… .*got "npub1/m);
    expect(out).not.toMatch(/unreachable/);
  });
  for (const [name, args, pattern] of cases) {
    it(name, async () => {
      const keysDir = mkdtempSync(join(tmpdir(), "tessera-cli-"));
      const withDir = args[0] === "coordinator" && args[1] === "keys" ? [...args, "--data-dir", keysDir] : args;
      const { code, out } = await tessera(withDir);
      rmSync(keysDir, { recursive: true, force: true });
      expect(code).not.toBe(0);
      expect(out).toMatch(pattern);
    }, 30_000);
  }
});

describe("a port that is taken", () => {
  it("is named with the flag to change, before the demo model is made, by up and by coordinator start", async () => {
    const port = await freePort();
    const taken = createServer().listen(port, "127.0.0.1");
    await once(taken, "listening");
    const dataDir = mkdtempSync(join(tmpdir(), "tessera-busy-"));
    try {
      for (const args of [["up", "--port", String(port), "--data-dir", dataDir], ["coordinator", "start", "--port", String(port), "--data-dir", dataDir]]) {
        const { code, out } = await tessera(args);
        expect(code, args[0]).not.toBe(0);
        expect(out, args[0]).toMatch(new RegExp(`\\[conflict\\]: port ${port} on 127\\.0\\.0\\.1 is already in use .*--port`));
      }
      expect(existsSync(join(dataDir, "models"))).toBe(false);
    } finally {
      taken.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
  }, 60_000);
});

describe("coordinator keys", () => {
  it("creates a key once, lists it without the token, and revokes it", async () => {
    const keysDir = mkdtempSync(join(tmpdir(), "tessera-keys-"));
    try {
      const created = await tessera(["coordinator", "keys", "create", "--name", "alice", "--json", "--data-dir", keysDir]);
      expect(created.code).toBe(0);
      const { token, id } = JSON.parse(created.out);
      expect(token).toMatch(/^tsk_/);
      const listed = await tessera(["coordinator", "keys", "list", "--json", "--data-dir", keysDir]);
      expect(listed.out).not.toContain(token);
      expect(JSON.parse(listed.out)).toEqual([expect.objectContaining({ id, name: "alice", revoked: false })]);
      expect((await tessera(["coordinator", "keys", "revoke", "alice", "--data-dir", keysDir])).code).toBe(0);
      expect(JSON.parse((await tessera(["coordinator", "keys", "list", "--json", "--data-dir", keysDir])).out)[0].revoked).toBe(true);
    } finally {
      rmSync(keysDir, { recursive: true, force: true });
    }
  }, 60_000);
});
