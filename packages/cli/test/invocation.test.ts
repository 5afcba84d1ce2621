import { mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tesseraCommand } from "../src/invocation.js";

/** The command the CLI prints for the next step must run as printed from where the user stands. */
let root: string;
let checkoutBin: string;
let installedBin: string;
beforeAll(() => {
  root = realpathSync(mkdtempSync(join(tmpdir(), "tessera-invocation-")));
  const file = (path: string) => {
    mkdirSync(join(path, ".."), { recursive: true });
    writeFileSync(path, "#!/usr/bin/env node\n");
    return path;
  };
  const link = (target: string, path: string) => {
    mkdirSync(join(path, ".."), { recursive: true });
    symlinkSync(target, path);
  };
  // A checkout: the workspace links its bin into node_modules/.bin.
  checkoutBin = file(join(root, "checkout/packages/cli/bin/tessera.js"));
  link(checkoutBin, join(root, "checkout/node_modules/.bin/tessera"));
  mkdirSync(join(root, "checkout/docs"));
  // A global install: <prefix>/bin/tessera -> <prefix>/lib/node_modules/tessera-network/bin/tessera.js.
  installedBin = file(join(root, "prefix/lib/node_modules/tessera-network/bin/tessera.js"));
  link(installedBin, join(root, "prefix/bin/tessera"));
  // Someone else's project where `tessera` is the unrelated npm package.
  link(file(join(root, "other/node_modules/tessera/bin/tessera")), join(root, "other/node_modules/.bin/tessera"));
  mkdirSync(join(root, "elsewhere"));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe("tesseraCommand", () => {
  it("is `tessera` where the tessera on the PATH is this CLI (a global install)", () => {
    expect(tesseraCommand({ path: `/usr/bin:${join(root, "prefix/bin")}`, cwd: join(root, "elsewhere"), script: join(root, "prefix/bin/tessera") })).toBe("tessera");
  });

  it("is `npx tessera` inside a checkout, from any folder of it, even when npm put its node_modules/.bin on the PATH", () => {
    for (const cwd of ["checkout", "checkout/docs", "checkout/packages/cli"]) {
      expect(tesseraCommand({ path: `${join(root, "checkout/node_modules/.bin")}:/usr/bin`, cwd: join(root, cwd), script: join(root, "checkout/node_modules/.bin/tessera") })).toBe("npx tessera");
    }
  });

  it("is `npx tessera-network` for an installed copy that npx would not find as `tessera` here", () => {
    expect(tesseraCommand({ path: "/usr/bin", cwd: join(root, "elsewhere"), script: installedBin })).toBe("npx tessera-network");
    // where `npx tessera` would run the unrelated package
    expect(tesseraCommand({ path: "/usr/bin", cwd: join(root, "other"), script: installedBin })).toBe("npx tessera-network");
  });

  it("is `node <path>` for a checkout's CLI run from outside the checkout", () => {
    expect(tesseraCommand({ path: "/usr/bin", cwd: join(root, "elsewhere"), script: checkoutBin })).toBe(`node ${checkoutBin}`);
  });
});
