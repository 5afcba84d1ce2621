import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DASHBOARD_LOGIN_LINK_TTL_SECONDS, verifyOperatorToken } from "@tessera/protocol";
import { readPlatformPublicKey } from "@tessera/coordinator/platform-key";
import { TESSERA_BIN } from "@tessera/testkit";

/**
 * `tessera dashboard login` and `owner-login` as people run them: each prints a link to the coordinator's dashboard
 * whose token is signed by the node key (or the coordinator's platform key) and lives 5 minutes. Signing in with
 * it is tested on the coordinator (packages/coordinator/test/dashboard-api.test.ts) and in a browser.
 */
const ENV = { ...process.env, TESSERA_HOME: "", TESSERA_COORDINATOR_URL: "", TESSERA_DATA_DIR: "", TESSERA_PORT: "" };
let dir: string;

function tessera(...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [TESSERA_BIN, ...args], { env: ENV, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((resolve) => child.once("close", (code) => resolve({ code, stdout, stderr })));
}

function tokenOf(url: string): { token: string; lifetime: number; key: string } {
  const token = url.slice(url.indexOf("#/login/") + "#/login/".length);
  const [, key, issued, expires] = token.split(".");
  return { token, lifetime: Number(expires) - Number(issued), key: key! };
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "tessera-dashboard-login-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("tessera dashboard login", () => {
  it("prints a one-time link to the node's coordinator, signed by the node key, for 5 minutes", async () => {
    const home = join(dir, "node");
    const init = await tessera("init", "--home", home, "--coordinator", "http://127.0.0.1:7999/");
    expect(init.code).toBe(0);
    const nodeId = /\b([0-9a-f]{64})\b/.exec(init.stdout + init.stderr)![1]!;

    const run = await tessera("dashboard", "login", "--home", home, "--json");
    expect(run.code).toBe(0);
    const answer = JSON.parse(run.stdout) as { url: string; node_id: string; expires_at: string };
    expect(answer.node_id).toBe(nodeId);
    expect(answer.url.startsWith(`http://127.0.0.1:7999/#/login/tsop1.${nodeId}.`)).toBe(true);
    const { token, lifetime } = tokenOf(answer.url);
    expect(lifetime).toBe(DASHBOARD_LOGIN_LINK_TTL_SECONDS);
    expect(verifyOperatorToken(token, Math.floor(Date.parse(answer.expires_at) / 1000) - 1)).toMatchObject({ ok: true, nodeId });

    const text = await tessera("dashboard", "login", "--home", home);
    expect(text.stdout).toContain("Open this link to sign in to the dashboard as this node's operator");
    expect(text.stdout).toContain("/#/login/tsop1.");
  }, 60_000);

  it("owner-login signs with the coordinator's platform key, for the address given", async () => {
    const data = join(dir, "coordinator");
    const run = await tessera("dashboard", "owner-login", "--data-dir", data, "--url", "https://tessera.example/", "--json");
    expect(run.code).toBe(0);
    const { url } = JSON.parse(run.stdout) as { url: string };
    expect(url.startsWith("https://tessera.example/#/login/tsop1.")).toBe(true);
    const { token, key, lifetime } = tokenOf(url);
    expect(key).toBe(readPlatformPublicKey(data));
    expect(lifetime).toBe(DASHBOARD_LOGIN_LINK_TTL_SECONDS);
    expect(verifyOperatorToken(token, Number(token.split(".")[2])).ok).toBe(true);
  }, 60_000);
});
