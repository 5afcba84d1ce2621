import { posix } from "node:path";
import { TesseraError } from "@tessera/protocol";
import type { ModelReference } from "./model-reference.js";

/** Where a reference's bytes are, and what the publisher says they are (when it says). */
export interface ResolvedDownload {
  url: string;
  /** The name the file gets in the models folder; the embedded engine's model id is this without `.gguf`. */
  fileName: string;
  sizeBytes?: number;
  /** Lower-case hex; the hub publishes the LFS object's SHA-256. */
  sha256?: string;
  /** Sent with the download (the hub token); fetch drops `authorization` on a redirect to another origin. */
  headers: Record<string, string>;
  /** `owner/repo/file@revision` or the URL, for messages. */
  source: string;
}

export interface HubOptions {
  /** `https://huggingface.co` unless HF_ENDPOINT / --hf-endpoint say otherwise (a mirror, or a test server). */
  endpoint: string;
  /** HF_TOKEN: gated and private repos. */
  token?: string;
  fetch: typeof globalThis.fetch;
  signal?: AbortSignal;
}

interface TreeEntry {
  type: string;
  path: string;
  size?: number;
  lfs?: { oid?: string; sha256?: string; size?: number };
}

/** At most this many pages of the hub's file listing (1,000 entries each), so a huge repo cannot loop forever. */
const MAX_PAGES = 20;
const SPLIT = /-(\d{5})-of-(\d{5})\.gguf$/i;

export async function resolveReference(ref: ModelReference, options: HubOptions): Promise<ResolvedDownload> {
  if (ref.kind === "url") return { url: ref.url, fileName: ref.fileName, headers: {}, source: ref.url };
  const entries = await listRepoFiles(ref.repo, ref.revision, options);
  const ggufs = entries.filter((e) => e.type === "file" && /\.gguf$/i.test(e.path));
  let entry: TreeEntry | undefined;
  if (ref.kind === "hf-file") {
    entry = ggufs.find((e) => e.path === ref.file);
    if (!entry) {
      throw new TesseraError("not_found", `${ref.repo}@${ref.revision} has no file ${ref.file}${available(ggufs)}`);
    }
  } else {
    entry = pickQuant(ref.repo, ref.quant, ggufs);
  }
  const split = SPLIT.exec(entry.path);
  if (split && split[2] !== "00001") {
    throw new TesseraError("bad_request", `${entry.path} is one part of a GGUF split into ${Number(split[2])} files; tessera installs single-file GGUFs: choose a smaller quantisation${available(ggufs)}`);
  }
  const sha = (entry.lfs?.sha256 ?? entry.lfs?.oid)?.toLowerCase();
  const size = entry.lfs?.size ?? entry.size;
  const url = `${options.endpoint.replace(/\/+$/, "")}/${ref.repo}/resolve/${encodeURIComponent(ref.revision)}/${entry.path.split("/").map(encodeURIComponent).join("/")}`;
  return {
    url,
    fileName: posix.basename(entry.path),
    ...(typeof size === "number" ? { sizeBytes: size } : {}),
    ...(sha && /^[0-9a-f]{64}$/.test(sha) ? { sha256: sha } : {}),
    headers: authHeaders(options),
    source: `${ref.repo}/${entry.path}@${ref.revision}`,
  };
}

/** The file whose name carries the quantisation as a whole token (`…-Q4_K_M.gguf`, `….q4_k_m.gguf`), never a projector. */
function pickQuant(repo: string, quant: string, ggufs: TreeEntry[]): TreeEntry {
  const q = quant.toLowerCase().replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const token = new RegExp(`(^|[-._])${q}([-._]|$)`);
  const matches = ggufs
    .filter((e) => !/mmproj/i.test(posix.basename(e.path)))
    .filter((e) => token.test(posix.basename(e.path).toLowerCase().replace(/\.gguf$/, "")))
    .sort((a, b) => a.path.length - b.path.length || a.path.localeCompare(b.path));
  const whole = matches.find((e) => !SPLIT.test(e.path));
  if (whole) return whole;
  if (matches[0]) {
    const parts = Number(SPLIT.exec(matches[0].path)![2]);
    throw new TesseraError("bad_request", `${repo}'s ${quant} is split into ${parts} files; tessera installs single-file GGUFs: choose a smaller quantisation${available(ggufs)}`);
  }
  throw new TesseraError("not_found", `${repo} has no ${quant} GGUF${available(ggufs)}`);
}

function available(ggufs: TreeEntry[]): string {
  if (ggufs.length === 0) return " (the repo has no .gguf files)";
  const names = ggufs.map((e) => e.path).slice(0, 12);
  return ` (its GGUF files: ${names.join(", ")}${ggufs.length > names.length ? ", …" : ""})`;
}

function authHeaders(options: HubOptions): Record<string, string> {
  return options.token ? { authorization: `Bearer ${options.token}` } : {};
}

/** `GET /api/models/{repo}/tree/{revision}?recursive=true`, following the `Link: <…>; rel="next"` pages. */
async function listRepoFiles(repo: string, revision: string, options: HubOptions): Promise<TreeEntry[]> {
  const base = options.endpoint.replace(/\/+$/, "");
  let url: string | undefined = `${base}/api/models/${repo}/tree/${encodeURIComponent(revision)}?recursive=true`;
  const entries: TreeEntry[] = [];
  for (let page = 0; url && page < MAX_PAGES; page++) {
    let res: Response;
    try {
      res = await options.fetch(url, { headers: { accept: "application/json", ...authHeaders(options) }, ...(options.signal ? { signal: options.signal } : {}) });
    } catch (err) {
      if (options.signal?.aborted) throw new TesseraError("cancelled", "interrupted while asking the hub for the file list");
      throw new TesseraError("unreachable", `cannot reach the hub at ${base}: ${causeText(err)} (no network? set HF_ENDPOINT for a mirror)`, { cause: err });
    }
    if (res.status === 404) throw new TesseraError("not_found", `no model repo ${repo} (revision ${revision}) at ${base}`);
    if (res.status === 401 || res.status === 403) {
      throw new TesseraError("forbidden", `the hub refused ${repo} (${res.status}): it does not exist, or it is gated or private: accept its terms on the hub and set HF_TOKEN`);
    }
    if (!res.ok) throw new TesseraError("unreachable", `the hub at ${base} answered ${res.status} listing ${repo}; try again later`);
    let body: unknown;
    try {
      body = await res.json();
    } catch {
      throw new TesseraError("unreachable", `the hub at ${base} answered a file list that is not JSON`);
    }
    if (!Array.isArray(body)) throw new TesseraError("unreachable", `the hub at ${base} answered a file list that is not a list`);
    for (const e of body) {
      if (e && typeof e === "object" && typeof (e as TreeEntry).path === "string" && typeof (e as TreeEntry).type === "string") entries.push(e as TreeEntry);
    }
    const next = /<([^>]+)>\s*;\s*rel="next"/.exec(res.headers.get("link") ?? "")?.[1];
    url = next ? new URL(next, base).toString() : undefined;
  }
  return entries;
}

/** The useful part of a fetch failure: undici puts `ECONNREFUSED 127.0.0.1:9` in the cause. */
export function causeText(err: unknown): string {
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  return cause?.code ?? cause?.message ?? (err as Error).message ?? String(err);
}
