import { createHash, type Hash } from "node:crypto";
import { createReadStream } from "node:fs";
import { type FileHandle, open, readFile, rename, rm, stat, statfs, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import { TesseraError } from "@tessera/protocol";
import { causeText } from "./hub-resolve.js";

/**
 * A resumable HTTP download into `<dest>.part`, renamed to `dest` only once its size and SHA-256 check out.
 * See design.md: Range + If-Range resume, what is kept on failure, and the error codes.
 */
export interface DownloadProgress {
  status: string;
  completedBytes: number;
  totalBytes?: number;
}

export interface DownloadOptions {
  url: string;
  dest: string;
  headers?: Record<string, string>;
  expectedSize?: number;
  /** Lower-case hex. */
  expectedSha256?: string;
  fetch: typeof globalThis.fetch;
  onProgress?: (progress: DownloadProgress) => void;
  signal?: AbortSignal;
  sleep?: (ms: number) => Promise<void>;
  /** Free bytes on the file system holding `dir`; undefined when unknown. */
  freeBytes?: (dir: string) => Promise<number | undefined>;
  /** Consecutive failed attempts (no byte gained) before giving up. Default 3. */
  maxRetries?: number;
  /** Checks the file's first bytes as soon as they arrive (throws to refuse, e.g. an HTML page instead of a GGUF). */
  checkHead?: (head: Buffer) => void;
  /** Bytes the head check needs. Default 4. */
  headBytes?: number;
}

export interface DownloadResult {
  path: string;
  sizeBytes: number;
  sha256: string;
  /** Bytes already in the `.part` file when this download started (0 for a fresh one). */
  resumedFromBytes: number;
}

/** Sidecar of the `.part` file: which URL and which version of it the bytes so far belong to. */
interface PartMeta {
  url: string;
  /** A strong ETag or a Last-Modified date, sent back as `If-Range`. */
  validator?: string;
  size?: number;
}

export function partPaths(dest: string): { part: string; meta: string } {
  return { part: `${dest}.part`, meta: `${dest}.part.json` };
}

export async function defaultFreeBytes(dir: string): Promise<number | undefined> {
  try {
    const s = await statfs(dir);
    return s.bavail * s.bsize;
  } catch {
    return undefined;
  }
}

function mb(bytes: number): string {
  return `${(bytes / 1e6).toFixed(1)} MB`;
}

export async function downloadFile(options: DownloadOptions): Promise<DownloadResult> {
  const { url, dest } = options;
  const paths = partPaths(dest);
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const freeBytes = options.freeBytes ?? defaultFreeBytes;
  const maxRetries = options.maxRetries ?? 3;
  const headBytes = options.headBytes ?? 4;
  const status = `downloading ${dest.split(/[\\/]/).pop()}`;

  let meta = await readMeta(paths.meta);
  let offset = await fileSize(paths.part);
  if (offset > 0 && (meta?.url !== url || (options.expectedSize !== undefined && offset > options.expectedSize))) {
    await discard(paths);
    offset = 0;
    meta = undefined;
  }
  const resumedFromBytes = offset;
  let hash = await hashOf(paths.part, offset);
  let total = meta?.size ?? options.expectedSize;
  let failures = 0;
  let headChecked = offset >= headBytes;

  const interrupted = () =>
    new TesseraError("cancelled", `download interrupted at ${mb(offset)}${total ? ` of ${mb(total)}` : ""}; the partial file is kept (${paths.part}): run the same command again to resume`);
  const dropped = (why: string) =>
    new TesseraError("unreachable", `download of ${url} failed at ${mb(offset)}${total ? ` of ${mb(total)}` : ""} (${why}); the partial file is kept (${paths.part}): run the same command again to resume`);

  for (;;) {
    if (options.signal?.aborted) throw interrupted();
    const headers: Record<string, string> = { ...options.headers, "accept-encoding": "identity" };
    if (offset > 0) {
      headers.range = `bytes=${offset}-`;
      if (meta?.validator) headers["if-range"] = meta.validator;
    }
    let res: Response;
    try {
      res = await options.fetch(url, { headers, redirect: "follow", ...(options.signal ? { signal: options.signal } : {}) });
    } catch (err) {
      if (options.signal?.aborted) throw interrupted();
      if (offset === 0 && failures === 0) throw new TesseraError("unreachable", `cannot reach ${new URL(url).host}: ${causeText(err)}`, { cause: err });
      if (++failures > maxRetries) throw dropped(causeText(err));
      await sleep(250 * 2 ** failures);
      continue;
    }

    if (res.status === 416) {
      // Nothing left past `offset`: complete if the server's size is ours, else the file changed; start over.
      await res.body?.cancel();
      const size = Number(/\/(\d+)$/.exec(res.headers.get("content-range") ?? "")?.[1]);
      if (size === offset) break;
      await discard(paths);
      offset = 0;
      meta = undefined;
      hash = createHash("sha256");
      headChecked = false;
      if (++failures > maxRetries) throw dropped("the server refused every range");
      continue;
    }
    if (res.status === 404 || res.status === 410) {
      await res.body?.cancel();
      throw new TesseraError("not_found", `${url} answered ${res.status}: no such file`);
    }
    if (res.status === 401 || res.status === 403) {
      await res.body?.cancel();
      throw new TesseraError("forbidden", `${url} answered ${res.status}: the file is gated or private (for the hub: accept its terms and set HF_TOKEN)`);
    }
    if (res.status >= 500 || res.status === 429 || res.status === 408) {
      await res.body?.cancel();
      if (++failures > maxRetries) throw dropped(`the server answered ${res.status}`);
      await sleep(250 * 2 ** failures);
      continue;
    }
    if (res.status !== 200 && res.status !== 206) {
      await res.body?.cancel();
      throw new TesseraError("bad_request", `${url} answered ${res.status}; not a downloadable file`);
    }

    let start = 0;
    if (res.status === 206) {
      const range = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(res.headers.get("content-range") ?? "");
      start = range ? Number(range[1]) : -1;
      if (start !== offset) {
        // A range we did not ask for: drop what we have and ask for the whole file.
        await res.body?.cancel();
        await discard(paths);
        offset = 0;
        meta = undefined;
        hash = createHash("sha256");
        headChecked = false;
        continue;
      }
      if (range && range[3] !== "*") total = Number(range[3]);
    } else {
      // 200: the whole file — the server ignores ranges, or If-Range said the file changed. Start from byte 0.
      if (offset > 0) {
        await discard(paths);
        offset = 0;
        hash = createHash("sha256");
        headChecked = false;
      }
      const length = Number(res.headers.get("content-length") ?? NaN);
      total = Number.isFinite(length) ? length : options.expectedSize;
    }
    if (options.expectedSize !== undefined && total !== undefined && total !== options.expectedSize) {
      await res.body?.cancel();
      await discard(paths);
      throw new TesseraError("bad_request", `${url} is ${total} bytes but ${options.expectedSize} were published; not installed`);
    }
    meta = { url, ...(validatorOf(res) ? { validator: validatorOf(res)! } : {}), ...(total !== undefined ? { size: total } : {}) };
    await writeFile(paths.meta, JSON.stringify(meta));
    if (total !== undefined) {
      const free = await freeBytes(dirname(dest));
      if (free !== undefined && free < total - offset) {
        await res.body?.cancel();
        throw new TesseraError("no_capacity", `disk full: ${mb(total - offset)} to download but ${mb(free)} free in ${dirname(dest)}; free some space and run the same command again`);
      }
    }

    const before = offset;
    let file: FileHandle | undefined;
    try {
      file = await open(paths.part, offset === 0 ? "w" : "a", 0o600);
      const head: Buffer[] = [];
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        const bytes = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
        if (!headChecked) {
          head.push(bytes);
          const joined = Buffer.concat(head);
          if (joined.length >= headBytes) {
            headChecked = true;
            options.checkHead?.(joined.subarray(0, headBytes));
          }
        }
        await writeAll(file, bytes);
        hash.update(bytes);
        offset += bytes.length;
        options.onProgress?.({ status, completedBytes: offset, ...(total !== undefined ? { totalBytes: total } : {}) });
      }
    } catch (err) {
      await file?.close().catch(() => {});
      file = undefined;
      if (err instanceof TesseraError) {
        if (err.code === "bad_request") await discard(paths);
        throw err;
      }
      const code = (err as NodeJS.ErrnoException).code;
      if (code === "ENOSPC" || code === "EDQUOT") {
        throw new TesseraError("no_capacity", `disk full at ${mb(offset)}${total ? ` of ${mb(total)}` : ""} in ${dirname(dest)}; the partial file is kept (${paths.part}): free some space and run the same command again`);
      }
      if (options.signal?.aborted) throw interrupted();
      // The connection dropped mid-body: resume from what reached the disk.
      if (offset > before) failures = 0;
      if (++failures > maxRetries) throw dropped(causeText(err));
      await sleep(250 * 2 ** failures);
      continue;
    } finally {
      await file?.close().catch(() => {});
    }
    if (total !== undefined && offset < total) {
      // The body ended early without an error (a proxy closed it cleanly): resume.
      if (offset > before) failures = 0;
      if (++failures > maxRetries) throw dropped("the connection closed early");
      continue;
    }
    break;
  }

  const sha256 = hash.digest("hex");
  const size = await fileSize(paths.part);
  if (!headChecked && options.checkHead) {
    try {
      options.checkHead((await readFile(paths.part)).subarray(0, headBytes));
    } catch (err) {
      await discard(paths);
      throw err;
    }
  }
  if ((total !== undefined && size !== total) || (options.expectedSize !== undefined && size !== options.expectedSize)) {
    await discard(paths);
    throw new TesseraError("bad_request", `${url}: downloaded ${size} bytes but expected ${options.expectedSize ?? total}; removed it, not installed`);
  }
  if (options.expectedSha256 !== undefined && sha256 !== options.expectedSha256) {
    await discard(paths);
    throw new TesseraError("bad_request", `checksum mismatch for ${url}: expected sha256 ${options.expectedSha256}, got ${sha256}; the file was removed, not installed`);
  }
  await rename(paths.part, dest);
  await rm(paths.meta, { force: true });
  return { path: dest, sizeBytes: size, sha256, resumedFromBytes };
}

async function writeAll(file: FileHandle, bytes: Buffer): Promise<void> {
  let written = 0;
  while (written < bytes.length) written += (await file.write(bytes, written, bytes.length - written)).bytesWritten;
}

/** If-Range takes a strong ETag or a date (RFC 9110 §13.1.5); a weak ETag cannot validate a range. */
function validatorOf(res: Response): string | undefined {
  const etag = res.headers.get("etag");
  if (etag && !etag.startsWith("W/")) return etag;
  return res.headers.get("last-modified") ?? undefined;
}

async function readMeta(path: string): Promise<PartMeta | undefined> {
  try {
    const meta = JSON.parse(await readFile(path, "utf8")) as PartMeta;
    return typeof meta.url === "string" ? meta : undefined;
  } catch {
    return undefined;
  }
}

async function fileSize(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch {
    return 0;
  }
}

async function discard(paths: { part: string; meta: string }): Promise<void> {
  await rm(paths.part, { force: true });
  await rm(paths.meta, { force: true });
}

/** SHA-256 state over the first `length` bytes of a `.part` file, so a resumed download hashes the whole file once. */
async function hashOf(path: string, length: number): Promise<Hash> {
  const hash = createHash("sha256");
  if (length === 0) return hash;
  for await (const chunk of createReadStream(path, { start: 0, end: length - 1, highWaterMark: 4 << 20 })) hash.update(chunk as Buffer);
  return hash;
}
