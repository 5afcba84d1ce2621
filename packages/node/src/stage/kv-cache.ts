/**
 * Per-request KV cache of one stage: for each of its layers, K and V rows `[cell][n_head_kv * head_dim]` holding
 * F16-rounded values (llama.cpp's default F16 cache), plus each cell's position for the causal mask.
 * Capacity grows by doubling, so appending one token does not allocate.
 */
export class KvCache {
  length = 0;
  capacity: number;
  positions: Int32Array;
  readonly k: Float32Array[] = [];
  readonly v: Float32Array[] = [];

  constructor(readonly nLayers: number, readonly rowWidth: number, initialCapacity = 64) {
    this.capacity = initialCapacity;
    this.positions = new Int32Array(initialCapacity);
    for (let l = 0; l < nLayers; l++) {
      this.k.push(new Float32Array(initialCapacity * rowWidth));
      this.v.push(new Float32Array(initialCapacity * rowWidth));
    }
  }

  /** Makes room for `extra` more cells. */
  reserve(extra: number): void {
    const need = this.length + extra;
    if (need <= this.capacity) return;
    let cap = this.capacity;
    while (cap < need) cap *= 2;
    const grow = (a: Float32Array): Float32Array => {
      const b = new Float32Array(cap * this.rowWidth);
      b.set(a.subarray(0, this.length * this.rowWidth));
      return b;
    };
    for (let l = 0; l < this.nLayers; l++) {
      this.k[l] = grow(this.k[l]);
      this.v[l] = grow(this.v[l]);
    }
    const p = new Int32Array(cap);
    p.set(this.positions.subarray(0, this.length));
    this.positions = p;
    this.capacity = cap;
  }
}
