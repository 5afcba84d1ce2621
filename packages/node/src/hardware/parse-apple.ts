/**
 * Apple Silicon through `sysctl -n machdep.cpu.brand_string` (`Apple M2 Pro`) and `sysctl -n hw.memsize` (bytes).
 * Memory is unified: by default macOS lets the GPU wire about 75% of it, which is what counts as VRAM for fit and
 * tier. Only the chip family is kept as the GPU name (coarse, like a GPU model name).
 */
export const APPLE_GPU_SHARE = 0.75;

export interface AppleChip {
  name: string;
  memoryMb: number;
  vramMb: number;
}

export function parseAppleSysctl(brand: string, memsize: string): AppleChip | undefined {
  const chip = /Apple (M\d+)( (Pro|Max|Ultra))?/.exec(brand.trim());
  const bytes = Number(memsize.trim());
  if (!chip || !Number.isFinite(bytes) || bytes <= 0) return undefined;
  const memoryMb = Math.round(bytes / 1024 / 1024);
  return { name: chip[0], memoryMb, vramMb: Math.floor(memoryMb * APPLE_GPU_SHARE) };
}
