import { createBackendFromConfig, createNodeLogger, machineProbe, probeConfiguredBackend, signerFromKeyFile, withVramCap, type NodeConfig } from "@tessera/node";
import type { ModelActionDeps } from "./model-actions.js";
import { printedCommand } from "../config.js";

/** The real machine behind `tessera model …`: key file, nvidia-smi & co., the configured backend, stdout/stderr. */
export function productionModelDeps(config: NodeConfig): ModelActionDeps {
  const { logger } = createNodeLogger({ level: "warn", stdout: { write: (line: string) => process.stderr.write(line) } });
  return {
    config,
    signer: signerFromKeyFile(config.paths.keyFile),
    fetch: (input, init) => fetch(input, init),
    nowMs: () => Date.now(),
    sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
    // Fit checks see only the share of each GPU the operator allows ([limits] max_vram_fraction).
    hardware: async () => withVramCap(await machineProbe().detectHardware(), config.limits.max_vram_fraction),
    openBackend: () => createBackendFromConfig(config, { fetch: (input, init) => fetch(input, init), logger }),
    backendKind: async () => (await probeConfiguredBackend(config, (input, init) => fetch(input, init))).kind,
    out: process.stdout,
    command: printedCommand(),
    err: process.stderr,
  };
}
