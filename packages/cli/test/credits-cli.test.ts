import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TESSERA_BIN } from "@tessera/testkit";

/** `tessera coordinator credits add|pool|show` against a coordinator's store, with bad input first. */
const ENV = { ...process.env, TESSERA_HOME: "", TESSERA_DB: "" };
let dir: string;

function tessera(...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [TESSERA_BIN, "coordinator", ...args, "--data-dir", dir], { env: ENV, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((resolve) => child.once("close", (code) => resolve({ code, stdout, stderr })));
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "tessera-credits-"));
  expect((await tessera("keys", "create", "--name", "app")).code).toBe(0);
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("tessera coordinator credits", () => {
  it("refuses bad amounts, an unknown key and a bad source, changing nothing", async () => {
    for (const [args, pattern] of [
      [["--key", "app", "--amount", "0.5"], /smallest top-up is 1\.00 USDC/],
      [["--key", "app", "--amount", "-3"], /amount of USDC/],
      [["--key", "app", "--amount", "1.0000001"], /at most 6 decimals/],
      [["--key", "app", "--amount", "ten"], /amount of USDC/],
      [["--key", "nobody", "--amount", "5"], /no active API key named "nobody"/],
      [["--key", "app", "--amount", "5", "--source", "<script>"], /--source must be/],
    ] as const) {
      const run = await tessera("credits", "add", ...args);
      expect(run.code, args.join(" ")).not.toBe(0);
      expect(run.stderr).toMatch(pattern);
    }
    const pool = await tessera("credits", "pool", "--amount", "0");
    expect(pool.stderr).toMatch(/more than 0/);
    const show = await tessera("credits", "show", "--json");
    expect(JSON.parse(show.stdout)).toEqual([]);
  }, 60_000);

  it("records a top-up with its source and funds the reward pool", async () => {
    const added = JSON.parse((await tessera("credits", "add", "--key", "app", "--amount", "10", "--source", "invoice 7", "--json")).stdout);
    expect(added).toMatchObject({ key: "app", added: { micro: 10_000_000, usdc: "10" }, balance: { micro: 10_000_000 }, source: "invoice 7" });
    const again = JSON.parse((await tessera("credits", "add", "--key", "app", "--amount", "2.5", "--json")).stdout);
    expect(again.balance).toEqual({ micro: 12_500_000, usdc: "12.5" });
    const pool = JSON.parse((await tessera("credits", "pool", "--amount", "100", "--json")).stdout);
    expect(pool.pool).toEqual({ micro: 100_000_000, usdc: "100" });
    const show = JSON.parse((await tessera("credits", "show", "--json")).stdout) as Array<{ key: string | null; account: string; balance: { micro: number } }>;
    expect(show.find((r) => r.key === "app")?.balance.micro).toBe(12_500_000);
    expect(show.find((r) => r.account === "platform:reward_pool")?.balance.micro).toBe(100_000_000);
  }, 60_000);
});
