/**
 * A minimal WebAssembly binary emitter: just the opcodes the stage kernels use, named as in the text format, so the
 * kernels in wasm-kernels.ts read like WAT instead of byte lists. No toolchain dependency; the module is assembled
 * at startup (a few KiB, well under a millisecond).
 */

export type Code = number[];

export function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
}

export function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (b & 0x40) === 0) || (n === -1 && (b & 0x40) !== 0)) {
      out.push(b);
      return out;
    }
    out.push(b | 0x80);
  }
}

const simd = (opcode: number, ...imm: number[]): Code => [0xfd, ...uleb(opcode), ...imm];
const memarg = (align: number, offset: number): number[] => [align, ...uleb(offset)];

/** Scalar and control instructions. */
export const I = {
  get: (i: number): Code => [0x20, ...uleb(i)],
  set: (i: number): Code => [0x21, ...uleb(i)],
  tee: (i: number): Code => [0x22, ...uleb(i)],
  i32: (v: number): Code => [0x41, ...sleb(v | 0)],
  f32: (v: number): Code => {
    const b = new Uint8Array(new Float32Array([v]).buffer);
    return [0x43, ...b];
  },
  add: [0x6a],
  sub: [0x6b],
  mul: [0x6c],
  shl: [0x74],
  shrU: [0x76],
  ltU: [0x49],
  geU: [0x4f],
  eqz: [0x45],
  drop: [0x1a],
  block: [0x02, 0x40],
  loop: [0x03, 0x40],
  end: [0x0b],
  br: (depth: number): Code => [0x0c, depth],
  brIf: (depth: number): Code => [0x0d, depth],
  f32Load: (offset = 0): Code => [0x2a, ...memarg(2, offset)],
  f32Store: (offset = 0): Code => [0x38, ...memarg(2, offset)],
  f32Add: [0x92],
  f32Sub: [0x93],
  f32Mul: [0x94],
  i32Load8S: (offset = 0): Code => [0x2c, ...memarg(0, offset)],
  i32Load8U: (offset = 0): Code => [0x2d, ...memarg(0, offset)],
};

/** SIMD (v128) instructions. */
export const V = {
  load: (offset = 0): Code => simd(0x00, ...memarg(0, offset)),
  /** Four int16 sign-extended to int32 lanes (one instruction on x64: pmovsxwd). */
  load16x4S: (offset = 0): Code => simd(0x03, ...memarg(0, offset)),
  /** Eight uint8 zero-extended to int16 lanes. */
  load8x8U: (offset = 0): Code => simd(0x02, ...memarg(0, offset)),
  load32Splat: (offset = 0): Code => simd(0x09, ...memarg(0, offset)),
  store: (offset = 0): Code => simd(0x0b, ...memarg(0, offset)),
  i32x4Const: (v: number): Code => simd(0x0c, ...[0, 1, 2, 3].flatMap(() => [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff])),
  i32x4Splat: simd(0x11),
  f32x4Splat: simd(0x13),
  f32x4ExtractLane: (lane: number): Code => simd(0x1f, lane),
  and: simd(0x4e),
  or: simd(0x50),
  bitselect: simd(0x52),
  i8x16ShrU: simd(0x6d),
  i16x8ExtendLowI8x16S: simd(0x87),
  i16x8ExtendHighI8x16S: simd(0x88),
  i16x8ExtendLowI8x16U: simd(0x89),
  i16x8ExtendHighI8x16U: simd(0x8a),
  i32x4ExtendLowI16x8S: simd(0xa7),
  i32x4ExtendHighI16x8S: simd(0xa8),
  i32x4Shl: simd(0xab),
  i32x4ShrU: simd(0xad),
  i32x4Add: simd(0xae),
  i32x4Mul: simd(0xb5),
  i32x4DotI16x8S: simd(0xba),
  f32x4Lt: simd(0x43),
  f32x4Ge: simd(0x46),
  f32x4Ne: simd(0x42),
  f32x4Abs: simd(0xe0),
  f32x4Add: simd(0xe4),
  f32x4Sub: simd(0xe5),
  f32x4Mul: simd(0xe6),
  f32x4ConvertI32x4S: simd(0xfa),
};

export const zeroV128: Code = V.i32x4Const(0);

export interface FunctionDef {
  name: string;
  /** Parameter types, 0x7f = i32, 0x7d = f32. */
  params: number[];
  /** Declared locals after the parameters: [count, type] runs, 0x7f = i32, 0x7b = v128. */
  locals: Array<[number, number]>;
  body: Code;
}

function section(id: number, body: number[]): number[] {
  return [id, ...uleb(body.length), ...body];
}

function str(s: string): number[] {
  const b = Buffer.from(s, "utf8");
  return [...uleb(b.length), ...b];
}

/**
 * A module importing `env.memory` (shared, at most `maxPages` pages of 64 KiB, so that worker threads can run the
 * same kernels over it) and exporting `fns` (each with its own type, no results).
 */
export function assembleModule(fns: FunctionDef[], maxPages: number): Uint8Array {
  const types = fns.flatMap((f) => [0x60, ...uleb(f.params.length), ...f.params, 0]);
  const bodies = fns.flatMap((f) => {
    const fn = [...uleb(f.locals.length), ...f.locals.flatMap(([n, t]) => [...uleb(n), t]), ...f.body, ...I.end];
    return [...uleb(fn.length), ...fn];
  });
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, [...uleb(fns.length), ...types]),
    // import kind 0x02 (memory), limits 0x03 (shared, with a maximum), 1 page at least.
    ...section(2, [1, ...str("env"), ...str("memory"), 0x02, 0x03, 1, ...uleb(maxPages)]),
    ...section(3, [...uleb(fns.length), ...fns.map((_, i) => i)]),
    ...section(7, [...uleb(fns.length), ...fns.flatMap((f, i) => [...str(f.name), 0x00, ...uleb(i)])]),
    ...section(10, [...uleb(fns.length), ...bodies]),
  ]);
}
