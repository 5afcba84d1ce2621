import { spawn } from "node:child_process";
import { describe, expect, it } from "vitest";
import { TESSERA_BIN } from "@tessera/testkit";

describe("tessera writing to a reader that stops early (`… --help | head -3`)", () => {
  it("exits 0 without a stack trace", async () => {
    const child = spawn(process.execPath, [TESSERA_BIN, "coordinator", "start", "--help"], { stdio: ["ignore", "pipe", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    // Read one chunk, then close the pipe as `head` does once it has its lines.
    await new Promise<void>((resolve) => child.stdout.once("data", () => resolve()));
    child.stdout.destroy();
    const code = await new Promise<number | null>((resolve) => child.on("close", (c) => resolve(c)));
    expect(stderr).not.toMatch(/EPIPE|Unhandled 'error' event/);
    expect(code).toBe(0);
  });
});
