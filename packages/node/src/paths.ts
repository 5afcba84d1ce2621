import { join } from "node:path";

/**
 * Where a node keeps its files. With a home (`--home DIR` or `TESSERA_HOME`) everything lives under that one
 * directory, so several daemons can share a box; otherwise the XDG base directories are used:
 * `~/.config/tessera/{node.toml,keys.toml}` and `~/.local/share/tessera/{logs/node.log,node.pid,…}`.
 *
 * Pure: the environment is passed in (only config.ts reads process.env).
 */
export interface NodePaths {
  /** The `--home` directory when one was given. */
  home: string | undefined;
  configDir: string;
  configFile: string;
  keyFile: string;
  /** The operator key, when the operator keeps it on this machine (`tessera operator init`). */
  operatorKeyFile: string;
  /** The operator's signed delegation of this node key (identity.ts). */
  delegationFile: string;
  /** After `tessera keys rotate`: the retired key and its signed hand-over to the current one. */
  previousKeyFile: string;
  rotationFile: string;
  dataDir: string;
  logDir: string;
  defaultLogFile: string;
  pidFile: string;
}

export interface PathEnv {
  HOME?: string;
  XDG_CONFIG_HOME?: string;
  XDG_DATA_HOME?: string;
}

export const CONFIG_FILE_NAME = "node.toml";
export const KEY_FILE_NAME = "keys.toml";

export function resolveNodePaths(home: string | undefined, env: PathEnv, userHome: string): NodePaths {
  if (home !== undefined) {
    return {
      home,
      configDir: home,
      configFile: join(home, CONFIG_FILE_NAME),
      keyFile: join(home, KEY_FILE_NAME),
      ...identityFiles(home),
      dataDir: join(home, "data"),
      logDir: join(home, "logs"),
      defaultLogFile: join(home, "logs", "node.log"),
      pidFile: join(home, "node.pid"),
    };
  }
  const base = env.HOME || userHome;
  const configDir = join(env.XDG_CONFIG_HOME || join(base, ".config"), "tessera");
  const dataDir = join(env.XDG_DATA_HOME || join(base, ".local", "share"), "tessera");
  return {
    home: undefined,
    configDir,
    configFile: join(configDir, CONFIG_FILE_NAME),
    keyFile: join(configDir, KEY_FILE_NAME),
    ...identityFiles(configDir),
    dataDir,
    logDir: join(dataDir, "logs"),
    defaultLogFile: join(dataDir, "logs", "node.log"),
    pidFile: join(dataDir, "node.pid"),
  };
}

function identityFiles(configDir: string): Pick<NodePaths, "operatorKeyFile" | "delegationFile" | "previousKeyFile" | "rotationFile"> {
  return {
    operatorKeyFile: join(configDir, "operator.toml"),
    delegationFile: join(configDir, "delegation.json"),
    previousKeyFile: join(configDir, "keys.previous.toml"),
    rotationFile: join(configDir, "rotation.json"),
  };
}
