import { chmodSync, existsSync, mkdirSync, writeFileSync } from "node:fs";
import { encodeNpub, TesseraError } from "@tessera/protocol";
import { loadNodeConfig, type NodeConfig, type SettingFlags } from "./config.js";
import { renderNodeToml } from "./config-file.js";
import { createKeyFile, readKeyFile } from "./key-store.js";
import type { NodeSettings } from "./config.js";

export interface InitNodeOptions {
  home?: string;
  /** Settings to write live into node.toml (e.g. `coordinator_url`); validated through the settings table. */
  settings?: SettingFlags;
  env?: Record<string, string | undefined>;
  randomBytes?: (n: number) => Uint8Array;
}

export interface InitNodeResult {
  config: NodeConfig;
  nodeId: string;
  npub: string;
  createdConfig: boolean;
  createdKeys: boolean;
  /** The operator key: made here when this machine had none (one machine, one operator, until told otherwise). */
  operatorId: string;
  createdOperatorKey: boolean;
}

/**
 * Makes the node's keypair, an operator key when the machine has none, and a commented node.toml (all 0600). Idempotent
 * and never destructive: existing key files are kept (they are identities) and an existing node.toml is left as the
 * user edited it. The delegation is signed at the first registration (identity.ts).
 */
export function initNode(options: InitNodeOptions = {}): InitNodeResult {
  const env = options.env;
  // Validate the requested settings before touching the disk: bad input changes nothing.
  const probe = loadNodeConfig({ home: options.home, flags: options.settings ?? {}, env });
  const { paths } = probe;
  for (const dir of [paths.configDir, paths.dataDir, paths.logDir]) {
    try {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? String(err);
      throw new TesseraError("bad_request", `cannot create ${dir}: ${code}`, { cause: err });
    }
  }
  const createdKeys = !existsSync(paths.keyFile);
  const keys = createdKeys ? createKeyFile(paths.keyFile, options.randomBytes) : readKeyFile(paths.keyFile);
  const createdOperatorKey = !existsSync(paths.operatorKeyFile);
  const operator = createdOperatorKey ? createKeyFile(paths.operatorKeyFile, options.randomBytes, "operator") : readKeyFile(paths.operatorKeyFile, "operator");
  const createdConfig = !existsSync(paths.configFile);
  if (createdConfig) {
    const live: Partial<NodeSettings> = {};
    for (const [name, value] of Object.entries(options.settings ?? {})) {
      if (value !== undefined) (live as Record<string, unknown>)[name] = probe[name as keyof NodeSettings];
    }
    live.coordinator_url = probe.coordinator_url;
    writeFileSync(paths.configFile, renderNodeToml(live, paths.defaultLogFile), { mode: 0o600, flag: "wx" });
    chmodSync(paths.configFile, 0o600);
  }
  const config = loadNodeConfig({ home: options.home, env, requireConfigFile: true });
  return {
    config,
    nodeId: keys.publicKeyHex,
    npub: encodeNpub(keys.publicKeyHex),
    createdConfig,
    createdKeys,
    operatorId: operator.publicKeyHex,
    createdOperatorKey,
  };
}
