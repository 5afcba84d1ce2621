import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ManagedProcess, TESSERA_BIN } from "@tessera/testkit";

/** `tessera logs` reads the node's log file of JSON records: readable with --log-format pretty, as is when piped. */
const dir = mkdtempSync(join(tmpdir(), "tessera-logs-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function logs(...args: string[]): Promise<{ code: number | null; out: string }> {
  const p = new ManagedProcess("logs", process.execPath, [TESSERA_BIN, "logs", "--home", dir, ...args]);
  const { code } = await p.exited;
  return { code, out: p.logText };
}

describe("tessera logs", () => {
  const file = join(dir, "node.log");
  const records = [
    { level: 30, time: "2026-01-02T03:04:05.000Z", msg: "session open" },
    { level: 40, time: "2026-01-02T03:04:06.000Z", job: "j1", msg: "node lost; failing over" },
  ];
  writeFileSync(file, `${records.map((r) => JSON.stringify(r)).join("\n")}\nnot a record: a crash's stderr\n`);

  it("renders the JSON records readable with --log-format pretty and passes other lines through", async () => {
    const { code, out } = await logs("--log-file", file, "--log-format", "pretty");
    expect(code).toBe(0);
    expect(out).toBe(
      "2026-01-02T03:04:05.000Z INFO  session open\n2026-01-02T03:04:06.000Z WARN  node lost; failing over job=j1\nnot a record: a crash's stderr\n",
    );
  }, 30_000);

  it("prints the records as they are when its stdout is not a terminal", async () => {
    const { code, out } = await logs("--log-file", file, "--lines", "2");
    expect(code).toBe(0);
    expect(out.split("\n")[0]).toBe(JSON.stringify(records[1]));
  }, 30_000);
});
