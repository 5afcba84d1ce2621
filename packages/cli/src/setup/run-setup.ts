import { existsSync, renameSync } from "node:fs";
import {
  type BackendAdapter,
  type NodeConfig,
  type SettingFlags,
  checkModelFit,
  describeMisfit,
  initNode,
  loadNodeConfig,
  memoryBudgetMb,
  probeBackends,
  recommendedModel,
  reconcileInventory,
  registerNode,
  signerFromKeyFile,
  tierForVram,
} from "@tessera/node";
import { type Hardware, TesseraError, encodeNpub } from "@tessera/protocol";
import { loadNodeIdentity } from "@tessera/node/identity";
import { installModelAction, parseModelName } from "../inventory/model-actions.js";
import type { ProgressSink } from "../inventory/progress-bar.js";

/**
 * `tessera setup`: hardware and tier, backend probe, the tier's default model, keys if missing, node.toml (0600),
 * the model pulled where the backend can, and registration. Each question has a default; `--yes` takes them all.
 * Every seam is injected; `ask` is the only interactive one.
 */
export interface SetupDeps {
  home: string | undefined;
  /** Node settings given as flags (validated through the settings table). */
  flags: SettingFlags;
  env: Record<string, string | undefined>;
  yes: boolean;
  ask(question: string, defaultAnswer: string): Promise<string>;
  hardware(): Promise<Hardware>;
  fetch: typeof fetch;
  nowMs(): number;
  sleep(ms: number): Promise<void>;
  openBackend(config: NodeConfig): Promise<BackendAdapter>;
  out: ProgressSink;
  err: ProgressSink;
  /** Admits this machine's operator key on a coordinator whose admission is `token` (`--join-token`). */
  joinToken?: string;
  /** How the user runs this CLI (`tessera`, `npx tessera`, …), for the commands setup prints; default `tessera`. */
  command?: string;
  /**
   * The embedded engine's GPU step (gpu/run-gpu-setup.ts): detect the GPU and install its build into the data dir.
   * Absent (tests): skipped. Its failure is a warning: the engine runs on the CPU build meanwhile.
   */
  gpuSetup?(config: NodeConfig, confirm: (question: string) => Promise<boolean>): Promise<void>;
}

export interface SetupResult {
  config: NodeConfig;
  nodeId: string;
  backend: string;
  model: string | undefined;
  registered: boolean;
}

const HOST_SETTING: Record<string, keyof SettingFlags | undefined> = {
  ollama: "ollama_host",
  vllm: "vllm_host",
  sglang: "sglang_host",
  max: "max_host",
  "llama-server": "llama_server_host",
  "llama-swap": "llama_server_host",
};

export async function runSetup(deps: SetupDeps): Promise<SetupResult> {
  const say = (line: string) => deps.out.write(`${line}\n`);
  const ask = async (question: string, defaultAnswer: string) => (deps.yes ? defaultAnswer : (await deps.ask(question, defaultAnswer)).trim() || defaultAnswer);
  const base = loadNodeConfig({ home: deps.home, env: deps.env, flags: deps.flags });

  const hardware = await deps.hardware();
  const vramMb = hardware.gpus.reduce((s, g) => s + g.vram_mb, 0);
  const tier = hardware.tier ?? tierForVram(vramMb);
  const gpus = hardware.gpus.length ? hardware.gpus.map((g) => `${g.name} (${(g.vram_mb / 1024).toFixed(1)} GiB)`).join(", ") : "no GPU";
  say(`hardware     ${gpus}, ${hardware.cpu_cores} cores, ${Math.round(hardware.ram_mb / 1024)} GiB RAM → tier ${tier}`);

  const probe = await probeBackends({
    backend: base.backend,
    hosts: { ollama: base.ollama_host, vllm: base.vllm_host, sglang: base.sglang_host, max: base.max_host, llamaServer: base.llama_server_host },
    openaiCompatibleHost: base.openai_compatible_host || undefined,
    fetch: deps.fetch,
    timeoutMs: base.probe_timeout_ms,
  });
  say(`backend      ${probe.kind}${probe.baseURL ? ` at ${probe.baseURL}` : ""}${probe.overridden ? " (from your setting)" : " (probed)"}`);

  const settings: SettingFlags = { ...deps.flags, backend: probe.kind };
  const hostKey = HOST_SETTING[probe.kind];
  if (hostKey && probe.baseURL) settings[hostKey] = probe.baseURL;

  let model: string | undefined;
  if (probe.kind === "embedded") {
    const path = await ask("GGUF model file for the embedded engine", base.model_path);
    if (!path) throw new TesseraError("bad_request", "no inference server answered and the embedded engine needs a GGUF file: pass --model <path.gguf> (or start Ollama and run setup again)");
    settings.model_path = path;
  } else {
    // Ollama installs on demand, so the tier's default is offered; other servers serve what they were started with.
    const suggested = probe.kind === "ollama" ? recommendedModel(tier) : "";
    const answer = await ask(`model to serve (tier ${tier} default${suggested ? ` ${suggested}` : ": everything the backend has"})`, suggested);
    if (answer) {
      model = parseModelName(answer);
      const fit = checkModelFit(model, { hardware });
      if (!fit.fits) throw new TesseraError("bad_request", `${describeMisfit(fit)}; pick a smaller model (\`tessera model recommend\`)`);
      settings.served_models = [model];
    }
  }
  settings.coordinator_url = await ask("coordinator URL", base.coordinator_url);

  if (existsSync(base.paths.configFile)) {
    const rewrite = await ask(`${base.paths.configFile} exists; rewrite it with these settings? (y/n)`, "y");
    if (!/^y(es)?$/i.test(rewrite)) throw new TesseraError("conflict", `kept ${base.paths.configFile} as it is; nothing changed`);
    renameSync(base.paths.configFile, `${base.paths.configFile}.bak`);
    say(`config       previous file kept as ${base.paths.configFile}.bak`);
  }
  const init = initNode({ home: deps.home, env: deps.env, settings });
  const config = init.config;
  say(`node id      ${init.npub}${init.createdKeys ? " (new keypair)" : ""}`);
  say(`operator     ${encodeNpub(init.operatorId)}${init.createdOperatorKey ? " (new operator key)" : ""}`);
  say(`config       ${config.paths.configFile} (0600)`);

  if (probe.kind === "embedded" && deps.gpuSetup) {
    try {
      await deps.gpuSetup(config, async (question) => /^y(es)?$/i.test(await ask(question, "y")));
    } catch (err) {
      deps.err.write(`warning: the GPU build was not installed (${(err as Error).message}); the embedded engine runs on the CPU: \`${deps.command ?? "tessera"} gpu setup\` tries again\n`);
    }
  }

  const signer = signerFromKeyFile(config.paths.keyFile);
  const backend = await deps.openBackend(config);
  try {
    if (model && backend.pull && !(await backend.listModels()).some((m) => m.id === model || m.id === `${model}:latest`)) {
      const install = await ask(`install ${model} now? (y/n)`, "y");
      if (/^y(es)?$/i.test(install)) {
        await installModelAction(
          { config, signer, fetch: deps.fetch, nowMs: deps.nowMs, sleep: deps.sleep, hardware: async () => hardware, openBackend: async () => backend, out: deps.out, err: deps.err },
          model,
        );
      }
    }
    const inventory = reconcileInventory(config.served_models, await backend.listModels(), backend.kind, hardware);
    let registered = false;
    try {
      const identity = loadNodeIdentity(config.paths, signer, Math.floor(deps.nowMs() / 1000));
      await registerNode(config, { signer, models: inventory.served, hardware, fetch: deps.fetch, nowSeconds: () => Math.floor(deps.nowMs() / 1000), identity, joinToken: deps.joinToken });
      registered = true;
      say(`registered   with ${config.coordinator_url}: ${inventory.served.map((m) => m.id).join(", ") || "no models yet"}`);
    } catch (err) {
      deps.err.write(`warning: could not register with ${config.coordinator_url} (${(err as Error).message}); run \`${deps.command ?? "tessera"} register\` once it is reachable\n`);
    }
    say(`memory       ${(memoryBudgetMb(hardware) / 1024).toFixed(1)} GiB for models`);
    const tessera = deps.command ?? "tessera";
    say(`next         ${tessera} start${deps.home ? ` --home ${deps.home}` : ""}   (then \`${tessera} doctor\` checks everything)`);
    return { config, nodeId: signer.publicKeyHex, backend: backend.kind, model, registered };
  } finally {
    await backend.close?.();
  }
}
