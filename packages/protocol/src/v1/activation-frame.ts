import { TesseraError } from "../errors.js";

/**
 * The binary activation frame of sharded inference (a binary WebSocket frame on the node's session). Little-endian:
 *
 * | offset | size | field |
 * | --- | --- | --- |
 * | 0 | 4 | magic `TSA3` (version 3: 56-byte header with timing and sampling fields; sampled answers carry their logit) |
 * | 4 | 1 | dtype: 0 F32, 1 F16, 2 I32 (token ids, cols = 1) |
 * | 5 | 1 | flags: bit 0 `SAMPLE` (request: the last stage samples and answers a token), bit 1 `SAMPLED` (answer is a sampled token) |
 * | 6 | 2 | request id length in bytes (UTF-8, ≤ 128) |
 * | 8 | 4 | stage id (which loaded span of the receiving node) |
 * | 12 | 4 | sequence number within the request |
 * | 16 | 4 | rows (tokens) |
 * | 20 | 4 | cols (values per row) |
 * | 24 | 4 | node µs (answers: receipt to send on the node, incl. decode, forward, sampling, encode; 0 in requests) |
 * | 28 | 4 | compute µs (answers: `Stage.forward` alone; 0 in requests) |
 * | 32 | 4 | PRNG state (u32): before sampling in a `SAMPLE` request, after it in a `SAMPLED` answer |
 * | 36 | 4 | reserved, 0 |
 * | 40 | 8 | `SAMPLE` requests: temperature (f64; 0 = greedy). `SAMPLED` answers: the sampled token's logit (f64) |
 * | 48 | 8 | `SAMPLE` requests: top-p (f64). `SAMPLED` answers: the logits row's largest magnitude (f64) |
 * | 56 | n | request id, zero-padded to a multiple of 4 |
 * | … | 4·rows | positions (int32) |
 * | … | rows·cols·(4 or 2) | data, row-major |
 *
 * Temperature and top-p are f64 so the last stage samples with exactly the request's values. The PRNG state travels
 * with every sampling step and comes back advanced, so the coordinator holds the sampling state and a replica that
 * takes over the last stage needs none of its own. A sampled answer carries the sampled token's logit and the row's
 * scale (its largest |logit|), so a stage check can judge the last span by more than its token (a quantised span
 * usually picks the same token with another logit). Data starts 4-aligned, so a decoder can view it without copying
 * when the buffer itself is aligned. Pure.
 */
export const ACTIVATION_MAGIC = 0x33415354; // "TSA3" read as a little-endian u32
export const ACTIVATION_HEADER_BYTES = 56;
export const MAX_ACTIVATION_VALUES = 64 * 1024 * 1024;
/** Request flag: the receiving stage, if it is the last one, samples and answers with one token (an I32 frame). */
export const ACTIVATION_FLAG_SAMPLE = 1;
/** Answer flag: the frame holds the token the last stage sampled. */
export const ACTIVATION_FLAG_SAMPLED = 2;

export type ActivationDtype = "f32" | "f16" | "i32";
const DTYPE_CODE: Record<ActivationDtype, number> = { f32: 0, f16: 1, i32: 2 };
const DTYPE_OF = ["f32", "f16", "i32"] as const;
/** Magic numbers of earlier versions, refused with a message that says to upgrade. */
const OLD_VERSIONS: Record<number, string> = { 0x31415354: "1 (TSA1)", 0x32415354: "2 (TSA2)" };

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
  /** `ACTIVATION_FLAG_*` bits (default 0). */
  flags?: number;
  /** Answers: microseconds the node spent on the frame, and in `Stage.forward` alone (default 0). */
  nodeUs?: number;
  computeUs?: number;
  /** PRNG state: before sampling (SAMPLE requests) or after (SAMPLED answers). */
  rngState?: number;
  /** `SAMPLE` requests: the sampling parameters (decoded as 0 and 1 on other frames). */
  temperature?: number;
  topP?: number;
  /** `SAMPLED` answers: the sampled token's logit, and the largest |logit| of its row (decoded as 0 on other frames). */
  tokenLogit?: number;
  logitScale?: number;
}

/** A decoded frame: every optional field present. */
export type DecodedActivationFrame = Required<ActivationFrame>;

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

function pad4(n: number): number {
  return (n + 3) & ~3;
}

/** Size of the encoded frame. */
export function activationFrameBytes(requestIdBytes: number, rows: number, cols: number, dtype: ActivationDtype): number {
  return ACTIVATION_HEADER_BYTES + pad4(requestIdBytes) + 4 * rows + pad4(rows * cols * (dtype === "f16" ? 2 : 4));
}

/** The last request id encoded and its bytes (never modified: they are only copied into frames). */
let lastEncodedId = "";
let lastEncodedBytes = new Uint8Array(0);

function encodeRequestId(id: string): Uint8Array {
  if (id !== lastEncodedId) {
    lastEncodedBytes = encoder.encode(id);
    lastEncodedId = id;
  }
  return lastEncodedBytes;
}

export function encodeActivationFrame(frame: ActivationFrame): Uint8Array {
  const id = encodeRequestId(frame.requestId);
  if (id.length === 0 || id.length > 128) throw new TesseraError("bad_request", "activation frame: request id must be 1–128 bytes");
  const { rows, cols } = frame;
  if (frame.positions.length !== rows) throw new TesseraError("bad_request", `activation frame: ${frame.positions.length} positions for ${rows} rows`);
  if (frame.data.length !== rows * cols) throw new TesseraError("bad_request", `activation frame: ${frame.data.length} values for ${rows} x ${cols}`);
  const total = activationFrameBytes(id.length, rows, cols, frame.dtype);
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  view.setUint32(0, ACTIVATION_MAGIC, true);
  view.setUint8(4, DTYPE_CODE[frame.dtype]);
  view.setUint8(5, (frame.flags ?? 0) & 0xff);
  view.setUint16(6, id.length, true);
  view.setUint32(8, frame.stageId >>> 0, true);
  view.setUint32(12, frame.seq >>> 0, true);
  view.setUint32(16, rows, true);
  view.setUint32(20, cols, true);
  view.setUint32(24, clampU32(frame.nodeUs ?? 0), true);
  view.setUint32(28, clampU32(frame.computeUs ?? 0), true);
  view.setUint32(32, (frame.rngState ?? 0) >>> 0, true);
  const sampled = ((frame.flags ?? 0) & ACTIVATION_FLAG_SAMPLED) !== 0;
  view.setFloat64(40, sampled ? (frame.tokenLogit ?? 0) : (frame.temperature ?? 0), true);
  view.setFloat64(48, sampled ? (frame.logitScale ?? 0) : (frame.topP ?? 1), true);
  out.set(id, ACTIVATION_HEADER_BYTES);
  let off = ACTIVATION_HEADER_BYTES + pad4(id.length);
  new Int32Array(out.buffer, off, rows).set(frame.positions);
  off += 4 * rows;
  const bytes = new Uint8Array(frame.data.buffer, frame.data.byteOffset, frame.data.byteLength);
  out.set(bytes, off);
  return out;
}

function clampU32(n: number): number {
  return Math.min(0xffffffff, Math.max(0, Math.round(n)));
}

/** The last request id decoded and its bytes: frames of one request follow each other, so most decodes reuse it. */
let lastIdBytes = new Uint8Array(0);
let lastId = "";

function decodeRequestId(bytes: Uint8Array): string {
  if (bytes.length === lastIdBytes.length) {
    let same = true;
    for (let i = 0; i < bytes.length && same; i++) same = bytes[i] === lastIdBytes[i];
    if (same) return lastId;
  }
  let id: string;
  try {
    id = decoder.decode(bytes);
  } catch {
    throw new TesseraError("bad_request", "activation frame: request id is not UTF-8");
  }
  lastIdBytes = bytes.slice();
  lastId = id;
  return id;
}

/** Decodes a frame; the data is a view of `buf` when aligned, else a copy. Throws `bad_request` on a malformed frame. */
export function decodeActivationFrame(buf: Uint8Array): DecodedActivationFrame {
  if (buf.byteLength < ACTIVATION_HEADER_BYTES) throw new TesseraError("bad_request", "activation frame: shorter than its header");
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const magic = view.getUint32(0, true);
  if (magic !== ACTIVATION_MAGIC) {
    const old = OLD_VERSIONS[magic];
    throw new TesseraError("bad_request", old ? `activation frame: version ${old} frames are no longer accepted; upgrade the node` : "activation frame: bad magic");
  }
  const dtype = DTYPE_OF[view.getUint8(4)];
  if (!dtype) throw new TesseraError("bad_request", `activation frame: unknown dtype ${view.getUint8(4)}`);
  const flags = view.getUint8(5);
  const idLen = view.getUint16(6, true);
  const stageId = view.getUint32(8, true);
  const seq = view.getUint32(12, true);
  const rows = view.getUint32(16, true);
  const cols = view.getUint32(20, true);
  if (idLen === 0 || idLen > 128) throw new TesseraError("bad_request", "activation frame: request id must be 1–128 bytes");
  if (rows === 0 || cols === 0 || rows * cols > MAX_ACTIVATION_VALUES) throw new TesseraError("bad_request", `activation frame: bad shape ${rows} x ${cols}`);
  if (dtype === "i32" && cols !== 1) throw new TesseraError("bad_request", "activation frame: token frames have one column");
  if (flags & ACTIVATION_FLAG_SAMPLED && (dtype !== "i32" || rows !== 1)) throw new TesseraError("bad_request", "activation frame: a sampled answer holds one token");
  const sampled = (flags & ACTIVATION_FLAG_SAMPLED) !== 0;
  const temperature = sampled ? 0 : view.getFloat64(40, true);
  const topP = sampled ? 1 : view.getFloat64(48, true);
  if (flags & ACTIVATION_FLAG_SAMPLE && !(temperature >= 0 && Number.isFinite(temperature) && topP > 0 && topP <= 1)) {
    throw new TesseraError("bad_request", `activation frame: bad sampling parameters (temperature ${temperature}, top_p ${topP})`);
  }
  const expected = activationFrameBytes(idLen, rows, cols, dtype);
  if (buf.byteLength !== expected) throw new TesseraError("bad_request", `activation frame: ${buf.byteLength} bytes, expected ${expected}`);
  const requestId = decodeRequestId(buf.subarray(ACTIVATION_HEADER_BYTES, ACTIVATION_HEADER_BYTES + idLen));
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
  return {
    requestId, stageId, seq, rows, cols, positions, dtype, data, flags,
    nodeUs: view.getUint32(24, true),
    computeUs: view.getUint32(28, true),
    rngState: view.getUint32(32, true),
    temperature,
    topP,
    tokenLogit: sampled ? view.getFloat64(40, true) : 0,
    logitScale: sampled ? view.getFloat64(48, true) : 0,
  };
}

/**
 * Turns a received F32 frame into its answer in place, for a stage whose output has the input's shape (every stage
 * but the first and the last): the answer carries the same request, sequence, rows and positions, so only the data
 * and the timing fields change. The data region is overwritten with `data` (the frame's rows × cols values, in memory
 * apart from `buf`) and the same buffer is returned. Saves encoding a new frame on every hop: no allocation, no
 * request-id encoding.
 */
export function answerActivationFrameInPlace(buf: Uint8Array, frame: DecodedActivationFrame, data: Float32Array, computeUs: number): Uint8Array {
  if (frame.dtype !== "f32" || data.length !== frame.rows * frame.cols) {
    throw new TesseraError("bad_request", `activation frame: an in-place answer needs ${frame.rows} x ${frame.cols} F32 values, got ${data.length} (${frame.dtype} frame)`);
  }
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const idLen = view.getUint16(6, true);
  view.setUint8(5, 0);
  view.setUint32(24, 0, true);
  view.setUint32(28, clampU32(computeUs), true);
  buf.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), ACTIVATION_HEADER_BYTES + pad4(idLen) + 4 * frame.rows);
  return buf;
}

/** Rewrites the stage id of an encoded frame in place (the relay forwards a payload to the next stage unchanged). */
export function setActivationFrameStage(buf: Uint8Array, stageId: number): void {
  new DataView(buf.buffer, buf.byteOffset, buf.byteLength).setUint32(8, stageId >>> 0, true);
}

/**
 * Marks an encoded frame, in place, as a sampling request with these parameters (the relay sets it on the frame it
 * forwards to the last stage), or clears the mark (`undefined`: the frame goes to a stage that is not the last).
 */
export function setActivationFrameSampling(buf: Uint8Array, sampling: { temperature: number; topP: number; rngState: number } | undefined): void {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const flags = view.getUint8(5);
  if (!sampling) {
    view.setUint8(5, flags & ~ACTIVATION_FLAG_SAMPLE);
    return;
  }
  view.setUint8(5, flags | ACTIVATION_FLAG_SAMPLE);
  view.setUint32(32, sampling.rngState >>> 0, true);
  view.setFloat64(40, sampling.temperature, true);
  view.setFloat64(48, sampling.topP, true);
}
