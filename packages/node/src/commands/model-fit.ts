import type { Hardware } from "@tessera/protocol";
import { checkFit, DEFAULT_CONTEXT_TOKENS, estimateVram } from "../models/estimate-vram.js";
import { modelSizeFromName } from "../models/parameter-count.js";

/**
 * Whether a model can run on this node. The budget is the GPUs' memory added up (layers split across cards;
 * unified memory on Apple Silicon), or system RAM on a CPU-only node (llama.cpp and Ollama run there from RAM).
 * The requirement is `estimateVram` from the parameter count and quantization in the name (or the backend's
 * details); a model whose name says neither but whose size on disk is known counts that size as its weights.
 * Nothing known: `fits: true, known: false` — the check refuses only what surely cannot fit.
 */
export interface ModelFit {
  model: string;
  fits: boolean;
  /** False when neither the name nor the backend says how big the model is. */
  known: boolean;
  requiredMb: number;
  availableMb: number;
}

const MIB = 1024 * 1024;

/**
 * The machine as fit checks see it under `[limits] max_vram_fraction`: each GPU with only the share of its memory the
 * node may use. What fit checks measure against; never what the node reports to a coordinator (its real hardware).
 */
export function withVramCap<H extends Pick<Hardware, "gpus">>(hardware: H, maxVramFraction: number): H {
  if (!(maxVramFraction > 0 && maxVramFraction <= 1)) throw new RangeError(`max_vram_fraction must be in (0, 1], got ${maxVramFraction}`);
  return { ...hardware, gpus: hardware.gpus.map((g) => ({ ...g, vram_mb: Math.floor(g.vram_mb * maxVramFraction) })) };
}

export function memoryBudgetMb(hardware: Pick<Hardware, "gpus" | "ram_mb">): number {
  const vram = hardware.gpus.reduce((sum, g) => sum + g.vram_mb, 0);
  return vram > 0 ? vram : hardware.ram_mb;
}

export interface ModelFitInput {
  hardware: Pick<Hardware, "gpus" | "ram_mb">;
  sizeBytes?: number;
  details?: { parameterSize?: string; quantization?: string };
  contextTokens?: number;
}

export function checkModelFit(model: string, input: ModelFitInput): ModelFit {
  const availableMb = memoryBudgetMb(input.hardware);
  const size = modelSizeFromName(model, input.details);
  if (size) {
    const fit = checkFit(estimateVram({ ...size, contextTokens: input.contextTokens ?? DEFAULT_CONTEXT_TOKENS }), availableMb);
    return { model, fits: fit.fits, known: true, requiredMb: fit.requiredMb, availableMb };
  }
  if (input.sizeBytes !== undefined && input.sizeBytes > 0) {
    // Weights as stored, plus the same runtime overhead estimateVram adds (5% + 512 MiB); KV cache unknown.
    const requiredMb = Math.ceil((input.sizeBytes * 1.05) / MIB) + 512;
    return { model, fits: requiredMb <= availableMb, known: true, requiredMb, availableMb };
  }
  return { model, fits: true, known: false, requiredMb: 0, availableMb };
}

export function describeMisfit(fit: ModelFit): string {
  return `${fit.model} needs about ${(fit.requiredMb / 1024).toFixed(1)} GiB but this node has ${(fit.availableMb / 1024).toFixed(1)} GiB`;
}
