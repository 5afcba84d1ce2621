import { existsSync, readdirSync, rmSync, rmdirSync, statSync } from "node:fs";
import { relative, sep } from "node:path";
import type { NodeConfig } from "@tessera/node/config";

type NodePaths = NodeConfig["paths"];

/**
 * What `tessera remove` deletes: this node's config, keys and identity files, its data dir (models, GPU runtime, pid
 * file), its logs, and the service file when one is installed. The operator key (operator.toml) is kept: it may vouch
 * for other nodes, and losing it cannot be undone; the list says so.
 *
 * The coordinator has no deregistration route (nodes.ts: register, heartbeat, status only), so nothing is sent: the
 * coordinator marks the node offline once its heartbeats stop and routes nothing to it; its record stays there.
 */
export interface RemovalItem {
  path: string;
  what: string;
  bytes: number;
}

export interface RemovalPlan {
  remove: RemovalItem[];
  keep: RemovalItem[];
  /** Directories removed afterwards if they are left empty (the home, the XDG config dir). */
  pruneIfEmpty: string[];
}

export const COORDINATOR_NOTE =
  "The coordinator has no deregistration API: it marks this node offline once its heartbeats stop and routes nothing to it; its record (reputation, receipts) stays there, and earnings already owed go to the payout address on record.";

function size(path: string): number {
  const s = statSync(path, { throwIfNoEntry: false });
  if (!s) return 0;
  if (!s.isDirectory()) return s.size;
  let total = 0;
  for (const entry of readdirSync(path)) total += size(`${path}${sep}${entry}`);
  return total;
}

function inside(child: string, parent: string): boolean {
  const rel = relative(parent, child);
  return rel !== "" && !rel.startsWith("..") && !rel.startsWith(sep);
}

export function planRemoval(paths: NodePaths, logFile: string, serviceFile: string | undefined): RemovalPlan {
  const candidates: Array<[string, string]> = [
    [paths.configFile, "config (node.toml)"],
    [paths.keyFile, "the node's key: nobody can sign as this node again"],
    [paths.previousKeyFile, "the node's retired key"],
    [paths.rotationFile, "the key rotation record"],
    [paths.delegationFile, "the operator's delegation of this node key"],
    [paths.dataDir, "data: models, GPU runtime, pid file"],
    [paths.logDir, "logs"],
  ];
  // A log file set elsewhere (log_file) goes too, with its rotations (node.log.1, …).
  if (!inside(logFile, paths.logDir) && !inside(logFile, paths.dataDir)) {
    candidates.push([logFile, "log file"]);
    const dir = logFile.slice(0, logFile.lastIndexOf(sep)) || sep;
    const base = logFile.slice(logFile.lastIndexOf(sep) + 1);
    for (const entry of existsSync(dir) ? readdirSync(dir) : []) if (/^\.\d+$/.test(entry.slice(base.length)) && entry.startsWith(base)) candidates.push([`${dir}${sep}${entry}`, "rotated log file"]);
  }
  if (serviceFile) candidates.unshift([serviceFile, "the service file (stopped and disabled first)"]);
  const seen = new Set<string>();
  const remove: RemovalItem[] = [];
  for (const [path, what] of candidates) {
    if (seen.has(path) || !existsSync(path)) continue;
    // The log dir inside the data dir (XDG layout) goes with it.
    if (path !== paths.dataDir && inside(path, paths.dataDir) && existsSync(paths.dataDir)) continue;
    seen.add(path);
    remove.push({ path, what, bytes: size(path) });
  }
  const keep = existsSync(paths.operatorKeyFile)
    ? [{ path: paths.operatorKeyFile, what: "your operator key: it may vouch for other nodes; delete it yourself if you mean to", bytes: size(paths.operatorKeyFile) }]
    : [];
  return { remove, keep, pruneIfEmpty: [paths.home ?? paths.configDir] };
}

export function formatBytes(bytes: number): string {
  if (bytes >= 1e9) return `${(bytes / 1e9).toFixed(1)} GB`;
  if (bytes >= 1e6) return `${(bytes / 1e6).toFixed(1)} MB`;
  if (bytes >= 1e3) return `${(bytes / 1e3).toFixed(1)} kB`;
  return `${bytes} B`;
}

export function describePlan(plan: RemovalPlan): string {
  const width = Math.max(0, ...plan.remove.map((i) => i.path.length));
  const lines = ["This deletes, from this machine:"];
  for (const i of plan.remove) lines.push(`  ${i.path.padEnd(width)}  ${formatBytes(i.bytes).padStart(8)}  ${i.what}`);
  for (const i of plan.keep) lines.push(`kept: ${i.path} (${i.what})`);
  return `${lines.join("\n")}\n`;
}

export function executeRemoval(plan: RemovalPlan): void {
  for (const item of plan.remove) rmSync(item.path, { recursive: true, force: true });
  for (const dir of plan.pruneIfEmpty) {
    try {
      rmdirSync(dir); // only when empty
    } catch {
      // not empty (the operator key, the user's own files) or gone
    }
  }
}
