import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { TESSERA_BIN } from "@tessera/testkit";

/** `tessera chat` refuses bad input before it connects anywhere (the coordinator URL here answers nothing). */
const ENV = { ...process.env, TESSERA_URL: "", TESSERA_API_KEY: "" };

describe("tessera chat with bad input", () => {
  it.each([
    [["--top-p", "0"], /--top-p must be above 0 and at most 1/],
    [["--seed", "-1"], /--seed must be a whole number/],
    [["--max-tokens", "0"], /--max-tokens must be a positive whole number/],
    [["--temperature", "3"], /--temperature must be between 0 and 2/],
    [["--json"], /--json needs a prompt/],
    [["", "--max-tokens", "4"], /the prompt is empty/],
  ])("%j", (args, message) => {
    const run = spawnSync(process.execPath, [TESSERA_BIN, "chat", ...args, "--url", "http://127.0.0.1:1"], { encoding: "utf8", env: ENV });
    expect(run.status).toBe(2);
    expect(run.stderr).toMatch(message);
  });
});
