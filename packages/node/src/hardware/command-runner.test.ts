import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { MISSING_TOOL_RECHECK_MS, createCommandRunner } from "./command-runner.js";

let dir: string | undefined;
afterEach(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

describe.skipIf(process.platform === "win32")("createCommandRunner", () => {
  it("answers a missing tool 127 without looking again for a minute, then finds it once it is installed", async () => {
    dir = mkdtempSync(join(tmpdir(), "tessera-runner-"));
    let clock = 1_000_000;
    const run = createCommandRunner(5_000, { PATH: dir }, () => clock);
    expect(await run("gpu-tool", ["--x"])).toEqual({ code: 127, stdout: "", stderr: "" });

    // Installed now; within the minute the runner does not look (the tool would print "ran").
    const tool = join(dir, "gpu-tool");
    writeFileSync(tool, "#!/bin/sh\necho ran \"$1\"\n");
    chmodSync(tool, 0o755);
    clock += MISSING_TOOL_RECHECK_MS - 1;
    expect((await run("gpu-tool", ["--x"])).code).toBe(127);

    clock += 1;
    expect(await run("gpu-tool", ["--x"])).toMatchObject({ code: 0, stdout: "ran --x\n" });
    // Found: asked every time again, and a failing run is its exit code, not "missing".
    writeFileSync(tool, "#!/bin/sh\nexit 3\n");
    expect((await run("gpu-tool", [])).code).toBe(3);
    expect((await run("other-tool", [])).code).toBe(127);
  });
});
