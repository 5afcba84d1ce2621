import { freemem, totalmem } from "node:os";

/**
 * The memory a node offers the coordinator for layer spans when its operator set no `stage_memory_mb`: what is free
 * now, but never more than `[limits] max_vram_fraction` of the machine's memory (spans run from RAM in the
 * WebAssembly runtime; the same cap is what bounds a GPU's share).
 */
export function stageMemoryOffer(maxFraction: number, free = freemem(), total = totalmem()): number {
  if (!(maxFraction > 0 && maxFraction <= 1)) throw new RangeError(`max_vram_fraction must be in (0, 1], got ${maxFraction}`);
  return Math.max(0, Math.min(free, Math.floor(total * maxFraction)));
}
