import { TesseraError } from "@tessera/protocol";

/**
 * What `tessera model install` and `tessera up --model` accept for the embedded engine, parsed without I/O:
 *   https://host/path/file.gguf           a GGUF by URL (http:// too)
 *   hf:owner/repo/path/file.gguf[#rev]    one file of a Hugging Face repo
 *   hf:owner/repo:Q4_K_M[#rev]            a repo plus quantisation, resolved through the hub's file listing
 * A huggingface.co page URL (`…/blob/main/x.gguf`) is rewritten to its download URL (`…/resolve/main/x.gguf`).
 */
export type ModelReference =
  | { kind: "url"; url: string; fileName: string }
  | { kind: "hf-file"; repo: string; file: string; revision: string }
  | { kind: "hf-quant"; repo: string; quant: string; revision: string };

/** Hub repo ids: `owner/name`, letters, digits, `.`, `_`, `-` (the hub's own rule, at most 96 each). */
const REPO = /^[A-Za-z0-9][A-Za-z0-9._-]{0,95}\/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$/;
/** Quantisation labels as GGUF file names spell them: Q4_K_M, IQ4_XS, Q8_0, F16, BF16, UD-Q4_K_XL. */
const QUANT = /^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$/;
const REVISION = /^[A-Za-z0-9][A-Za-z0-9._/-]{0,127}$/;
const FILE_SEGMENT = /^[A-Za-z0-9_][A-Za-z0-9._+@=-]{0,199}$/;

/** True for a URL or `hf:` reference; anything else is a backend model name (Ollama) or a local path. */
export function isModelReference(raw: string): boolean {
  return /^(https?:\/\/|hf:)/i.test(raw.trim());
}

function bad(raw: string, why: string): TesseraError {
  return new TesseraError("bad_request", `invalid model reference ${JSON.stringify(raw)}: ${why}`);
}

export function parseModelReference(raw: unknown): ModelReference {
  if (typeof raw !== "string" || raw.trim() === "") {
    throw new TesseraError("bad_request", "give a GGUF reference: https://…/file.gguf, hf:owner/repo/file.gguf or hf:owner/repo:Q4_K_M");
  }
  const text = raw.trim();
  if (/^hf:/i.test(text)) return parseHf(text);
  if (/^https?:\/\//i.test(text)) return parseUrl(text);
  throw bad(text, "expected an http(s):// URL or hf:owner/repo/file.gguf or hf:owner/repo:QUANT");
}

function parseUrl(text: string): ModelReference {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw bad(text, "not a valid URL");
  }
  if (url.username || url.password) throw bad(text, "credentials in the URL are refused (they would be stored and printed)");
  if (url.hostname === "huggingface.co" || url.hostname === "hf.co") url.pathname = url.pathname.replace(/^(\/[^/]+\/[^/]+)\/blob\//, "$1/resolve/");
  const last = decodeURIComponent(url.pathname.split("/").pop() ?? "");
  const stem = last.replace(/\.gguf$/i, "");
  if (stem === "" || !FILE_SEGMENT.test(last)) throw bad(text, "the URL's path must end in a file name, e.g. …/model-Q4_K_M.gguf");
  return { kind: "url", url: url.toString(), fileName: `${stem}.gguf` };
}

function parseHf(text: string): ModelReference {
  const body = text.slice(3);
  const hash = body.indexOf("#");
  const revision = hash === -1 ? "main" : body.slice(hash + 1);
  const spec = hash === -1 ? body : body.slice(0, hash);
  if (!REVISION.test(revision) || revision.includes("..")) throw bad(text, `bad revision ${JSON.stringify(revision)}`);
  const parts = spec.split("/");
  if (parts.length >= 3) {
    const repo = parts.slice(0, 2).join("/");
    const file = parts.slice(2).join("/");
    if (!REPO.test(repo)) throw bad(text, `bad repo ${JSON.stringify(repo)}: expected owner/name`);
    const segments = file.split("/");
    if (segments.some((s) => !FILE_SEGMENT.test(s) || s === "." || s === "..")) throw bad(text, `bad file path ${JSON.stringify(file)}`);
    if (!/\.gguf$/i.test(file)) throw bad(text, "the file must be a .gguf (or give a quantisation: hf:owner/repo:Q4_K_M)");
    return { kind: "hf-file", repo, file, revision };
  }
  const colon = spec.lastIndexOf(":");
  const repo = colon === -1 ? spec : spec.slice(0, colon);
  if (!REPO.test(repo)) throw bad(text, `bad repo ${JSON.stringify(repo)}: expected hf:owner/repo:QUANT or hf:owner/repo/file.gguf`);
  if (colon === -1) throw bad(text, "name a quantisation or a file: hf:owner/repo:Q4_K_M or hf:owner/repo/file.gguf");
  const quant = spec.slice(colon + 1);
  if (!QUANT.test(quant)) throw bad(text, `bad quantisation ${JSON.stringify(quant)}: e.g. Q4_K_M, Q8_0, IQ4_XS`);
  return { kind: "hf-quant", repo, quant, revision };
}
