/**
 * ggml's self-check, run before `stage_backend = auto` trusts a backend: an F16 and a Q8_0 mat-vec on fixed data
 * computed by ggml must equal the same products computed here with the activation converted as ggml's CPU backend
 * converts it (F16 rounding; Q8_0 quantisation). On the CPU backend they agree within 1e-5 of the largest output; a GPU
 * device gets DEVICE_TOLERANCE (below). It catches a library whose ABI does not match the binding, a CPU variant that
 * computes wrong, and a GPU device that initialises but does not compute (a broken driver answers zeros, NaN or
 * garbage); it takes well under a millisecond of compute.
 */
import { F16_TO_F32, f32ToF16Bits } from "../f16.js";
import { quantizeQ8 } from "../weights.js";
import { GGML, type GgmlLib, type Ptr } from "./ggml-lib.js";

const ROWS = 16;
const COLS = 64;

/**
 * How far a device's products may be from the reference, as a fraction of the largest. A GPU backend may multiply the
 * activation in F32 or F16 or quantise it its own way (Q8_1), where the reference follows the CPU backend; over 64
 * terms that moves a product by a few 1e-3 of the largest at most (measured: design.md here, "The compute check").
 * A device that computes wrong is off by the order of the outputs themselves.
 */
export const DEVICE_TOLERANCE = 2e-2;
const CPU_TOLERANCE = 1e-5;

/**
 * y = W x on `backend` (ggml's CPU backend when not given); `weights` are W [rows][cols] in the ggml type's bytes.
 * A backend passed in stays the caller's.
 */
export function ggmlMatVec(g: GgmlLib, type: number, rows: number, cols: number, weights: Uint8Array, x: Float32Array, on?: Ptr): Float32Array {
  const backend = on ?? g.backendCpuInit();
  if (!backend) throw new Error(`ggml's CPU backend (${g.cpuVariant}) did not initialise`);
  const ctx = g.init(g.tensorOverhead() * 8 + g.graphOverheadCustom(16, false), true);
  let buf: Ptr | undefined;
  try {
    const w = g.newTensor2d(ctx, type, cols, rows);
    const xt = g.newTensor2d(ctx, GGML.F32, cols, 1);
    const y = g.mulMat(ctx, w, xt);
    const graph = g.newGraphCustom(ctx, 16, false);
    g.buildForwardExpand(graph, y);
    buf = g.allocCtxTensors(ctx, backend);
    if (!buf) throw new Error("cannot allocate a ggml buffer");
    if (g.nbytes(w) !== weights.length) throw new Error(`ggml sizes the ${rows}x${cols} matrix at ${g.nbytes(w)} bytes, expected ${weights.length}`);
    g.tensorSet(w, weights, 0, weights.length);
    g.tensorSet(xt, x, 0, x.byteLength);
    const status = g.graphCompute(backend, graph);
    if (status !== 0) throw new Error(`ggml graph compute failed (status ${status})`);
    const out = new Float32Array(rows);
    g.tensorGet(y, out, 0, out.byteLength);
    return out;
  } finally {
    if (buf) g.bufferFree(buf);
    g.free(ctx);
    if (!on) g.backendFree(backend);
  }
}

/** Deterministic values in [-1, 1) (no PRNG state to share). */
const value = (i: number): number => Math.fround(Math.sin(i * 12.9898) * 0.999);

/**
 * Throws an Error saying what differs when ggml's products are not the reference's: on ggml's CPU backend, or on the
 * device backend `on` (within DEVICE_TOLERANCE; the caller keeps and frees it).
 */
export function ggmlSelfCheck(g: GgmlLib, on?: Ptr): void {
  const tolerance = on ? DEVICE_TOLERANCE : CPU_TOLERANCE;
  const x = Float32Array.from({ length: COLS }, (_, i) => value(i + 1000) * 2);
  // F16
  const halves = Uint16Array.from({ length: ROWS * COLS }, (_, i) => f32ToF16Bits(value(i)));
  const f16Want = new Float64Array(ROWS);
  for (let r = 0; r < ROWS; r++) for (let c = 0; c < COLS; c++) f16Want[r] += F16_TO_F32[halves[r * COLS + c]] * F16_TO_F32[f32ToF16Bits(x[c])];
  compare("F16", ggmlMatVec(g, GGML.F16, ROWS, COLS, new Uint8Array(halves.buffer), x, on), f16Want, tolerance);
  // Q8_0: the weights quantised with the activation quantiser (d = amax/127), stored as ggml blocks (f16 d, 32 int8).
  const w = Float32Array.from({ length: ROWS * COLS }, (_, i) => value(i + 5000));
  const qw = new Int8Array(ROWS * COLS);
  const dw = new Float32Array((ROWS * COLS) / 32);
  quantizeQ8(w, 0, ROWS * COLS, qw, 0, dw, 0);
  const bytes = new Uint8Array(dw.length * 34);
  for (let b = 0; b < dw.length; b++) {
    const d = f32ToF16Bits(dw[b]);
    bytes[b * 34] = d & 0xff;
    bytes[b * 34 + 1] = d >> 8;
    for (let i = 0; i < 32; i++) bytes[b * 34 + 2 + i] = qw[b * 32 + i] & 0xff;
  }
  const qx = new Int8Array(COLS);
  const dx = new Float32Array(COLS / 32);
  quantizeQ8(x, 0, COLS, qx, 0, dx, 0);
  const q8Want = new Float64Array(ROWS);
  for (let r = 0; r < ROWS; r++) for (let c = 0; c < COLS; c++) q8Want[r] += dw[(r * COLS + c) >> 5] * dx[c >> 5] * qw[r * COLS + c] * qx[c];
  compare("Q8_0", ggmlMatVec(g, GGML.Q8_0, ROWS, COLS, bytes, x, on), q8Want, tolerance);
}

function compare(type: string, got: Float32Array, want: Float64Array, tolerance: number): void {
  let max = 0;
  for (const v of want) max = Math.max(max, Math.abs(v));
  for (let i = 0; i < want.length; i++) {
    if (!(Math.abs(got[i] - want[i]) <= tolerance * max)) throw new Error(`ggml ${type} mat-vec row ${i}: ${got[i]}, expected ${want[i]}`);
  }
}
