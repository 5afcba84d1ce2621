import { existsSync, realpathSync } from "node:fs";
import { delimiter, dirname, join, sep } from "node:path";

/** The CLI's package name on the npm registry (`tessera` there is an unrelated package). */
export const PACKAGE_NAME = "tessera-network";

/** What decides how a user runs this CLI from their shell. */
export interface Invocation {
  /** The PATH the user's shell searches. */
  path: string | undefined;
  /** The working directory, where the printed command will be typed. */
  cwd: string;
  /** The script this process runs (process.argv[1]): bin/tessera.js, maybe through a symlink. */
  script: string;
}

/**
 * How to run this very CLI from where the user stands, for the commands it prints ("next: tessera start …"), so each
 * runs exactly as printed:
 * - `tessera` where the `tessera` on the PATH is this CLI (a global install). PATH entries ending in
 *   node_modules/.bin are skipped: npm and npx add those for the command they run, the user's shell has none;
 * - `npx tessera` where npx finds this CLI in a node_modules/.bin of the working directory or above (a checkout, whose
 *   workspace links the bin, or a project that installed the package);
 * - `npx tessera-network` for an installed copy found neither way (run through `npx tessera-network` itself);
 * - otherwise, a checkout's CLI run from outside it: `node /path/to/bin/tessera.js`.
 */
export function tesseraCommand(invocation: Invocation): string {
  const self = realpath(invocation.script) ?? invocation.script;
  for (const dir of (invocation.path ?? "").split(delimiter)) {
    if (dir === "" || dir.endsWith(join("node_modules", ".bin"))) continue;
    if (realpath(join(dir, "tessera")) === self) return "tessera";
  }
  for (let dir = invocation.cwd; ; dir = dirname(dir)) {
    const bin = join(dir, "node_modules", ".bin", "tessera");
    if (existsSync(bin)) {
      if (realpath(bin) === self) return "npx tessera";
      break; // npx would run that other one
    }
    if (dirname(dir) === dir) break;
  }
  if (self.split(sep).includes("node_modules")) return `npx ${PACKAGE_NAME}`;
  return `node ${self}`;
}

function realpath(path: string): string | undefined {
  try {
    return realpathSync(path);
  } catch {
    return undefined;
  }
}
