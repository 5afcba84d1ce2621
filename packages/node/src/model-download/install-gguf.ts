import { mkdir, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { TesseraError, modelIdFromFileName } from "@tessera/protocol";
import { sha256File } from "../file-sha256.js";
import { type DownloadProgress, downloadFile } from "./download-file.js";
import { checkGgufHead, readHead } from "./gguf-magic.js";
import { type ResolvedDownload, resolveReference } from "./hub-resolve.js";
import { parseModelReference } from "./model-reference.js";

/**
 * `tessera model install REF` / `tessera up --model REF` for the embedded engine: resolve the reference, download it
 * (resumable) into the models folder, check size, SHA-256 and the GGUF magic, and return where it is and the model id
 * the embedded engine will advertise for it. Recording it in node.toml is the caller's (see design.md).
 */
export interface InstallGgufOptions {
  reference: string;
  /** `<data dir>/models`; made 0700 when missing. */
  modelsDir: string;
  hubEndpoint: string;
  hubToken?: string;
  /** `--sha256`: what the operator expects; must agree with what the hub publishes when it does. */
  sha256?: string;
  fetch: typeof globalThis.fetch;
  onProgress?: (progress: DownloadProgress) => void;
  /** Resolved, before any byte is downloaded: a place to refuse (too large for this node). */
  beforeDownload?: (resolved: ResolvedDownload) => void;
  signal?: AbortSignal;
  sleep?: (ms: number) => Promise<void>;
  freeBytes?: (dir: string) => Promise<number | undefined>;
}

export interface InstalledGguf {
  path: string;
  fileName: string;
  /** The id the embedded engine advertises for the file (its name without `.gguf`). */
  modelId: string;
  sizeBytes: number;
  sha256: string;
  /** Whether the checksum was published (hub or --sha256) and checked, or only computed. */
  sha256Checked: boolean;
  resumedFromBytes: number;
  alreadyInstalled: boolean;
  source: string;
}

export function parseSha256Flag(raw: unknown): string | undefined {
  if (raw === undefined) return undefined;
  const value = typeof raw === "string" ? raw.trim().toLowerCase().replace(/^sha256:/, "") : "";
  if (!/^[0-9a-f]{64}$/.test(value)) throw new TesseraError("bad_request", `--sha256 must be 64 hex digits, got ${JSON.stringify(raw)}`);
  return value;
}

export async function installGguf(options: InstallGgufOptions): Promise<InstalledGguf> {
  const ref = parseModelReference(options.reference);
  const expectedFlag = parseSha256Flag(options.sha256);
  const resolved = await resolveReference(ref, {
    endpoint: options.hubEndpoint,
    ...(options.hubToken ? { token: options.hubToken } : {}),
    fetch: options.fetch,
    ...(options.signal ? { signal: options.signal } : {}),
  });
  if (expectedFlag && resolved.sha256 && expectedFlag !== resolved.sha256) {
    throw new TesseraError("bad_request", `--sha256 ${expectedFlag} differs from the sha256 the hub publishes for ${resolved.source} (${resolved.sha256}); nothing downloaded`);
  }
  const expectedSha = expectedFlag ?? resolved.sha256;
  options.beforeDownload?.(resolved);
  await mkdir(options.modelsDir, { recursive: true, mode: 0o700 });
  const dest = join(options.modelsDir, resolved.fileName);
  const modelId = modelIdFromFileName(resolved.fileName.replace(/\.gguf$/i, ""));
  const base = { path: dest, fileName: resolved.fileName, modelId, source: resolved.source, sha256Checked: expectedSha !== undefined };

  const existing = await stat(dest).catch(() => undefined);
  if (existing) {
    const sizeOk = resolved.sizeBytes === undefined || existing.size === resolved.sizeBytes;
    const magicOk = (await readHead(dest)).equals(Buffer.from("GGUF"));
    const sha = sizeOk && magicOk ? await sha256File(dest) : undefined;
    if (sha !== undefined && (expectedSha === undefined || sha === expectedSha)) {
      return { ...base, sizeBytes: existing.size, sha256: sha, resumedFromBytes: 0, alreadyInstalled: true };
    }
    // A different file under the same name (another repo's, or a damaged one): replaced by the published one.
    await rm(dest, { force: true });
  }

  const result = await downloadFile({
    url: resolved.url,
    dest,
    headers: resolved.headers,
    ...(resolved.sizeBytes !== undefined ? { expectedSize: resolved.sizeBytes } : {}),
    ...(expectedSha !== undefined ? { expectedSha256: expectedSha } : {}),
    fetch: options.fetch,
    ...(options.onProgress ? { onProgress: options.onProgress } : {}),
    ...(options.signal ? { signal: options.signal } : {}),
    ...(options.sleep ? { sleep: options.sleep } : {}),
    ...(options.freeBytes ? { freeBytes: options.freeBytes } : {}),
    checkHead: (head) => checkGgufHead(head, resolved.source),
  });
  return { ...base, sizeBytes: result.sizeBytes, sha256: result.sha256, resumedFromBytes: result.resumedFromBytes, alreadyInstalled: false };
}
