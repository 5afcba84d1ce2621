import type { Command } from "commander";
import type { ModelActionDeps } from "../inventory/model-actions.js";
import { printJson } from "../output.js";
import { type NodeFlags, nodeConfigFrom, withNodeSettings } from "./node-options.js";
import { loadHubSettings, printedCommand } from "../config.js";
import { TesseraError } from "@tessera/protocol";

/** The real machine behind `tessera model …`, for the node config at these flags. */
async function productionDeps(flags: NodeFlags): Promise<ModelActionDeps> {
  const config = nodeConfigFrom(flags, true);
  const { productionModelDeps } = await import("../inventory/production-deps.js");
  return productionModelDeps(config);
}

/**
 * `tessera model install|remove|list|recommend`: this node's model inventory (not to be confused with
 * `tessera models`, which lists what the whole network serves). `makeDeps` is the seam tests replace.
 */
export function addModelCommand(program: Command, makeDeps: (flags: NodeFlags) => Promise<ModelActionDeps> = productionDeps): void {
  const model = program.command("model").description("this node's models: install, remove, list, recommend");

  withNodeSettings(
    model
      .command("install")
      .argument("<model>", "Ollama: a name like qwen2.5:7b; embedded engine: a GGUF as https://…/file.gguf, hf:owner/repo/file.gguf or hf:owner/repo:Q4_K_M")
      .description("install a model and advertise it: Ollama pulls it; the embedded engine downloads the GGUF (resumable, checked) into the data dir and makes it node.toml's model_path")
      .option("--force", "install even when it cannot fit this node's memory (it is then never advertised)")
      .option("--sha256 <hex>", "the GGUF's expected SHA-256 (for a URL; the hub publishes its own for hf: references)")
      .option("--hf-endpoint <url>", "Hugging Face hub or a mirror for hf: references (HF_ENDPOINT; default https://huggingface.co; HF_TOKEN for gated repos)"),
  ).action(async (name: string, flags: NodeFlags & { force?: boolean; sha256?: string; hfEndpoint?: string }) => {
    // Flags are checked before anything is probed or downloaded (--sha256 by the action, first): bad input changes nothing.
    // HF_ENDPOINT is read (and refused when malformed) for a reference or an explicit flag, not for an Ollama name.
    const hub = /^(https?:\/\/|hf:)/i.test(name.trim()) || flags.hfEndpoint !== undefined ? loadHubSettings(flags) : undefined;
    const deps = await makeDeps(flags);
    const { installModelAction } = await import("../inventory/model-actions.js");
    // Ctrl-C stops a download and keeps its .part (the error says so); a second Ctrl-C exits at once.
    const stop = new AbortController();
    const onSignal = () => stop.abort();
    process.once("SIGINT", onSignal);
    process.once("SIGTERM", onSignal);
    try {
      await installModelAction({ ...deps, ...(hub ? { hub } : {}), signal: stop.signal }, name, { force: flags.force === true, ...(flags.sha256 !== undefined ? { sha256: flags.sha256 } : {}) });
    } finally {
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
    }
  });

  withNodeSettings(
    model.command("remove").argument("<name>", "model name").description("delete a model from the backend and stop advertising it"),
  ).action(async (name: string, flags: NodeFlags) => {
    const deps = await makeDeps(flags);
    const { removeModelAction } = await import("../inventory/model-actions.js");
    await removeModelAction(deps, name);
  });

  withNodeSettings(
    model.command("list").description("models in served_models or the backend: name, size, backend, status (loaded / installed / missing)").option("--json", "print JSON"),
  ).action(async (flags: NodeFlags & { json?: boolean }) => {
    const deps = await makeDeps(flags);
    const { listModelsAction } = await import("../inventory/model-actions.js");
    const { formatBytes } = await import("../inventory/progress-bar.js");
    const rows = await listModelsAction(deps);
    if (flags.json) return printJson({ models: rows });
    if (rows.length === 0) return void deps.out.write(`no models: install one with \`${printedCommand()} model install NAME\`\n`);
    const lines = [`${"NAME".padEnd(32)} ${"SIZE".padStart(9)}  ${"BACKEND".padEnd(10)} ${"STATUS".padEnd(9)} ADVERTISED`];
    for (const r of rows) {
      const advertised = r.served ? "yes" : r.status === "missing" ? "no (missing)" : !r.fits ? "no (too large)" : "no";
      lines.push(`${r.name.padEnd(32)} ${(r.size_bytes === null ? "—" : formatBytes(r.size_bytes)).padStart(9)}  ${r.backend.padEnd(10)} ${r.status.padEnd(9)} ${advertised}`);
    }
    deps.out.write(lines.join("\n") + "\n");
  });

  withNodeSettings(
    model
      .command("recommend")
      .description("the default model for this node's VRAM tier (>=48gb, >=24gb, >=12gb, >=8gb, cpu), as this node's backend installs it (Ollama name or GGUF reference)")
      .option("--install-all", "install the default model of this tier and of every tier below it that fits"),
  ).action(async (flags: NodeFlags & { installAll?: boolean }) => {
    const deps = await makeDeps(flags);
    const { installModelAction, recommend } = await import("../inventory/model-actions.js");
    const r = recommend(await deps.hardware(), deps.backendKind ? await deps.backendKind() : "ollama");
    const lines = [`this node: tier ${r.tier}, ${(r.memoryMb / 1024).toFixed(1)} GiB for models, backend ${r.backend}`];
    if (!r.installs) {
      // Suggest nothing this backend cannot install through tessera.
      lines.push(`backend ${r.backend} cannot install models through tessera: ${r.howTo}`);
      deps.out.write(lines.join("\n") + "\n");
      if (flags.installAll) throw new TesseraError("bad_request", `--install-all: backend ${r.backend} cannot install models through tessera`);
      return;
    }
    for (const t of r.tiers) lines.push(`  ${t.thisNode ? "→" : " "} ${t.tier.padEnd(7)} ${t.model.padEnd(16)} ${t.fits ? "fits" : "too large"}`);
    if (flags.installAll && r.backend === "embedded") {
      throw new TesseraError("bad_request", `--install-all: the embedded engine serves one GGUF file; install one with \`${printedCommand()} model install REF\``);
    }
    const own = r.tiers.find((t) => t.thisNode)!;
    lines.push(flags.installAll ? "" : `install it: ${printedCommand()} model install ${own.model}`);
    deps.out.write(lines.join("\n") + "\n");
    if (!flags.installAll) return;
    const start = r.tiers.indexOf(own);
    for (const t of r.tiers.slice(start).filter((x) => x.fits)) await installModelAction(deps, t.model);
  });
}
