/**
 * Per-request KV cache of one stage: for each of its layers, K and V rows `[cell][n_head_kv * head_dim]` stored as
 * F16 halves (llama.cpp's default F16 cache, half the memory of floats), plus each cell's position for the causal
 * mask. The rows live in the WASM arena (blocks returned on release()) so the attention kernels read them in place;
 * without WebAssembly they live in JS Uint16Arrays. Capacity grows by doubling, so appending one token does not
 * allocate.
 */
import { f32ToF16Bits } from "./f16.js";
import { arenaBlockSize, type WasmArena } from "./wasm-matvec.js";

/** First capacity of a request's cache, in cells. */
const FIRST_CAPACITY = 64;

/** The capacity a cache of `capacity` cells grows to when it must hold `need` (doubling). */
function grownCapacity(capacity: number, need: number): number {
  let cap = capacity;
  while (cap < need) cap *= 2;
  return cap;
}

/**
 * Arena bytes one layer's K and V take once a request holds `cells` tokens: two blocks of the doubled capacity, each
 * rounded up as the arena rounds them (what a span's offer counts per layer at its full context).
 */
export function kvCacheBytesPerLayer(rowWidth: number, cells: number): number {
  return 2 * arenaBlockSize(grownCapacity(FIRST_CAPACITY, cells) * rowWidth * 2);
}

export class KvCache {
  length = 0;
  capacity: number;
  positions: Int32Array;
  /** Arena byte offsets of each layer's K and V rows (WASM), or -1 when `jsK`/`jsV` hold them. */
  readonly kPtr: number[] = [];
  readonly vPtr: number[] = [];
  private readonly jsK: Uint16Array[] = [];
  private readonly jsV: Uint16Array[] = [];

  constructor(readonly nLayers: number, readonly rowWidth: number, private readonly arena: WasmArena | null, initialCapacity = FIRST_CAPACITY) {
    this.capacity = initialCapacity;
    this.positions = new Int32Array(initialCapacity);
    for (let l = 0; l < nLayers; l++) {
      if (arena) {
        this.kPtr.push(arena.allocBlock(this.bytes(initialCapacity)));
        this.vPtr.push(arena.allocBlock(this.bytes(initialCapacity)));
      } else {
        this.jsK.push(new Uint16Array(initialCapacity * rowWidth));
        this.jsV.push(new Uint16Array(initialCapacity * rowWidth));
      }
    }
  }

  private bytes(cells: number): number {
    return cells * this.rowWidth * 2;
  }

  /** The halves of layer `l`'s K (or V) rows and the index of cell 0 in it (a fresh view: the arena can grow). */
  halves(l: number, which: "k" | "v"): { u16: Uint16Array; base: number } {
    if (this.arena) return { u16: this.arena.heapU16, base: (which === "k" ? this.kPtr[l] : this.vPtr[l]) >> 1 };
    return { u16: which === "k" ? this.jsK[l] : this.jsV[l], base: 0 };
  }

  /** Stores cell `cell` of layer `l`: K and V rows rounded to F16 (as ggml's F32 -> F16 copy into the cache). */
  write(l: number, cell: number, k: Float32Array, kOff: number, v: Float32Array, vOff: number): void {
    const w = this.rowWidth;
    const ku = this.arena ? this.arena.heapU16 : this.jsK[l];
    const vu = this.arena ? ku : this.jsV[l];
    const ko = (this.arena ? this.kPtr[l] >> 1 : 0) + cell * w;
    const vo = (this.arena ? this.vPtr[l] >> 1 : 0) + cell * w;
    for (let i = 0; i < w; i++) {
      ku[ko + i] = f32ToF16Bits(k[kOff + i]);
      vu[vo + i] = f32ToF16Bits(v[vOff + i]);
    }
  }

  /** Makes room for `extra` more cells. */
  reserve(extra: number): void {
    const need = this.length + extra;
    if (need <= this.capacity) return;
    const cap = grownCapacity(this.capacity, need);
    const used = this.length * this.rowWidth;
    for (let l = 0; l < this.nLayers; l++) {
      if (this.arena) {
        for (const ptrs of [this.kPtr, this.vPtr]) {
          const ptr = this.arena.allocBlock(this.bytes(cap));
          const u16 = this.arena.heapU16;
          u16.copyWithin(ptr >> 1, ptrs[l] >> 1, (ptrs[l] >> 1) + used);
          this.arena.freeBlock(ptrs[l], this.bytes(this.capacity));
          ptrs[l] = ptr;
        }
      } else {
        for (const arrays of [this.jsK, this.jsV]) {
          const grown = new Uint16Array(cap * this.rowWidth);
          grown.set(arrays[l].subarray(0, used));
          arrays[l] = grown;
        }
      }
    }
    const p = new Int32Array(cap);
    p.set(this.positions.subarray(0, this.length));
    this.positions = p;
    this.capacity = cap;
  }

  /** Gives the arena blocks back; the cache must not be used afterwards. */
  release(): void {
    if (!this.arena) return;
    for (let l = 0; l < this.nLayers; l++) {
      this.arena.freeBlock(this.kPtr[l], this.bytes(this.capacity));
      this.arena.freeBlock(this.vPtr[l], this.bytes(this.capacity));
    }
    this.kPtr.length = 0;
    this.vPtr.length = 0;
  }
}
