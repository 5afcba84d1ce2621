import { TesseraError } from "../errors.js";

/**
 * The binary activation frame of sharded inference (a binary WebSocket frame on the node's session). Little-endian:
 *
 * | offset | size | field |
 * | --- | --- | --- |
 * | 0 | 4 | magic `TSA1` |
 * | 4 | 1 | dtype: 0 F32, 1 F16, 2 I32 (token ids, cols = 1) |
 * | 5 | 1 | flags (0; reserved) |
 * | 6 | 2 | request id length in bytes (UTF-8, ≤ 128) |
 * | 8 | 4 | stage id (which loaded span of the receiving node) |
 * | 12 | 4 | sequence number within the request |
 * | 16 | 4 | rows (tokens) |
 * | 20 | 4 | cols (values per row) |
 * | 24 | n | request id, zero-padded to a multiple of 4 |
 * | … | 4·rows | positions (int32) |
 * | … | rows·cols·(4 or 2) | data, row-major |
 *
 * Data starts 4-aligned, so a decoder can view it without copying when the buffer itself is aligned. Pure.
 */
export const ACTIVATION_MAGIC = 0x31415354; // "TSA1" read as a little-endian u32
export const ACTIVATION_HEADER_BYTES = 24;
export const MAX_ACTIVATION_VALUES = 64 * 1024 * 1024;

export type ActivationDtype = "f32" | "f16" | "i32";
const DTYPE_CODE: Record<ActivationDtype, number> = { f32: 0, f16: 1, i32: 2 };
const DTYPE_OF = ["f32", "f16", "i32"] as const;

export interface ActivationFrame {
  requestId: string;
  stageId: number;
  seq: number;
  rows: number;
  cols: number;
  positions: Int32Array;
  dtype: ActivationDtype;
  /** f32: Float32Array; f16: Uint16Array of half bits; i32: Int32Array. rows·cols values. */
  data: Float32Array | Uint16Array | Int32Array;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

function pad4(n: number): number {
  return (n + 3) & ~3;
}

/** Size of the encoded frame. */
export function activationFrameBytes(requestIdBytes: number, rows: number, cols: number, dtype: ActivationDtype): number {
  return ACTIVATION_HEADER_BYTES + pad4(requestIdBytes) + 4 * rows + pad4(rows * cols * (dtype === "f16" ? 2 : 4));
}

/** Encodes a frame into one new buffer (copies `data`, so a caller may pass a view of a buffer it reuses). */
export function encodeActivationFrame(frame: ActivationFrame): Uint8Array {
  const id = encoder.encode(frame.requestId);
  if (id.length === 0 || id.length > 128) throw new TesseraError("bad_request", "activation frame: request id must be 1–128 bytes");
  const { rows, cols } = frame;
  if (frame.positions.length !== rows) throw new TesseraError("bad_request", `activation frame: ${frame.positions.length} positions for ${rows} rows`);
  if (frame.data.length !== rows * cols) throw new TesseraError("bad_request", `activation frame: ${frame.data.length} values for ${rows} x ${cols}`);
  const total = activationFrameBytes(id.length, rows, cols, frame.dtype);
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  view.setUint32(0, ACTIVATION_MAGIC, true);
  view.setUint8(4, DTYPE_CODE[frame.dtype]);
  view.setUint8(5, 0);
  view.setUint16(6, id.length, true);
  view.setUint32(8, frame.stageId >>> 0, true);
  view.setUint32(12, frame.seq >>> 0, true);
  view.setUint32(16, rows, true);
  view.setUint32(20, cols, true);
  out.set(id, ACTIVATION_HEADER_BYTES);
  let off = ACTIVATION_HEADER_BYTES + pad4(id.length);
  new Int32Array(out.buffer, off, rows).set(frame.positions);
  off += 4 * rows;
  const bytes = new Uint8Array(frame.data.buffer, frame.data.byteOffset, frame.data.byteLength);
  out.set(bytes, off);
  return out;
}

/** Decodes a frame; the data is a view of `buf` when aligned, else a copy. Throws `bad_request` on a malformed frame. */
export function decodeActivationFrame(buf: Uint8Array): ActivationFrame {
  if (buf.byteLength < ACTIVATION_HEADER_BYTES) throw new TesseraError("bad_request", "activation frame: shorter than its header");
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  if (view.getUint32(0, true) !== ACTIVATION_MAGIC) throw new TesseraError("bad_request", "activation frame: bad magic");
  const dtype = DTYPE_OF[view.getUint8(4)];
  if (!dtype) throw new TesseraError("bad_request", `activation frame: unknown dtype ${view.getUint8(4)}`);
  const idLen = view.getUint16(6, true);
  const stageId = view.getUint32(8, true);
  const seq = view.getUint32(12, true);
  const rows = view.getUint32(16, true);
  const cols = view.getUint32(20, true);
  if (idLen === 0 || idLen > 128) throw new TesseraError("bad_request", "activation frame: request id must be 1–128 bytes");
  if (rows === 0 || cols === 0 || rows * cols > MAX_ACTIVATION_VALUES) throw new TesseraError("bad_request", `activation frame: bad shape ${rows} x ${cols}`);
  if (dtype === "i32" && cols !== 1) throw new TesseraError("bad_request", "activation frame: token frames have one column");
  const expected = activationFrameBytes(idLen, rows, cols, dtype);
  if (buf.byteLength !== expected) throw new TesseraError("bad_request", `activation frame: ${buf.byteLength} bytes, expected ${expected}`);
  let requestId: string;
  try {
    requestId = decoder.decode(buf.subarray(ACTIVATION_HEADER_BYTES, ACTIVATION_HEADER_BYTES + idLen));
  } catch {
    throw new TesseraError("bad_request", "activation frame: request id is not UTF-8");
  }
  let off = ACTIVATION_HEADER_BYTES + pad4(idLen);
  const aligned = (buf.byteOffset & 3) === 0;
  // A copy into a fresh buffer (not `buf.slice()`: on a Node Buffer that is a view with the same odd offset).
  const src = aligned ? buf : new Uint8Array(buf);
  const base = aligned ? buf.byteOffset : 0;
  const positions = new Int32Array(src.buffer, base + off, rows);
  off += 4 * rows;
  const n = rows * cols;
  const data =
    dtype === "f32" ? new Float32Array(src.buffer, base + off, n) : dtype === "f16" ? new Uint16Array(src.buffer, base + off, n) : new Int32Array(src.buffer, base + off, n);
  return { requestId, stageId, seq, rows, cols, positions, dtype, data };
}

/** Rewrites the stage id of an encoded frame in place (the relay forwards a payload to the next stage unchanged). */
export function setActivationFrameStage(buf: Uint8Array, stageId: number): void {
  new DataView(buf.buffer, buf.byteOffset, buf.byteLength).setUint32(8, stageId >>> 0, true);
}
