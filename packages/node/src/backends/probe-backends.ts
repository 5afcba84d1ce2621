import { DEFAULT_PORTS, normalizeHost, type BackendKindSetting } from "./backend-settings.js";

/**
 * Which backend this node uses, decided at daemon start. Probe order, first to answer wins:
 * Ollama `GET /api/tags`, vLLM `GET /health`, SGLang `GET /health`, MAX `GET /health`, llama.cpp `GET /health`;
 * then embedded. All probes run at once (start-up costs one timeout, not five) and the earliest in that order that
 * answered is chosen. An explicit `backend` (anything but "auto") is taken as is, without probing.
 *
 * MAX and llama.cpp share port 8080 and both answer `/health`, so the body tells them apart: llama-server answers
 * `{"status":"ok"}` (or 503 `{"error":{"message":"Loading model"}}` while loading, which counts as present),
 * llama-swap answers `OK`; MAX answers 200 with neither. The llama.cpp probe tells llama-server from llama-swap the
 * same way.
 */
export type ProbedKind = "ollama" | "vllm" | "sglang" | "max" | "llama-server" | "llama-swap";
export type SelectedKind = ProbedKind | "openai-compatible" | "embedded";

export interface ProbeHosts {
  ollama?: string;
  vllm?: string;
  sglang?: string;
  max?: string;
  llamaServer?: string;
}

export interface ProbeAttempt {
  kind: ProbedKind | "llama.cpp";
  url: string;
  ok: boolean;
  /** What answered or why not (status, body kind, error), for `tessera doctor` and the start log. */
  detail: string;
}

export interface ProbeResult {
  kind: SelectedKind;
  /** The backend's base URL; absent for embedded. */
  baseURL?: string;
  /** true when an explicit `backend` setting decided, not a probe. */
  overridden: boolean;
  attempts: ProbeAttempt[];
}

export interface ProbeOptions {
  hosts?: ProbeHosts;
  /** The `backend` setting; "auto" (default) probes. */
  backend?: BackendKindSetting;
  /** For an explicit `openai-compatible` backend. */
  openaiCompatibleHost?: string;
  fetch?: typeof globalThis.fetch;
  timeoutMs?: number;
}

type Answer = { status: number; body: string } | { error: string };

export async function probeBackends(options: ProbeOptions = {}): Promise<ProbeResult> {
  const hosts = {
    ollama: normalizeHost(options.hosts?.ollama ?? "127.0.0.1", DEFAULT_PORTS.ollama),
    vllm: normalizeHost(options.hosts?.vllm ?? "127.0.0.1", DEFAULT_PORTS.vllm),
    sglang: normalizeHost(options.hosts?.sglang ?? "127.0.0.1", DEFAULT_PORTS.sglang),
    max: normalizeHost(options.hosts?.max ?? "127.0.0.1", DEFAULT_PORTS.max),
    llamaServer: normalizeHost(options.hosts?.llamaServer ?? "127.0.0.1", DEFAULT_PORTS["llama-server"]),
  };
  const backend = options.backend ?? "auto";
  if (backend !== "auto") {
    const baseURL: Record<Exclude<BackendKindSetting, "auto">, string | undefined> = {
      ollama: hosts.ollama,
      vllm: hosts.vllm,
      sglang: hosts.sglang,
      max: hosts.max,
      "llama-server": hosts.llamaServer,
      "llama-swap": hosts.llamaServer,
      "openai-compatible": options.openaiCompatibleHost ? normalizeHost(options.openaiCompatibleHost, 8000) : undefined,
      embedded: undefined,
    };
    const url = baseURL[backend];
    return url === undefined ? { kind: backend, overridden: true, attempts: [] } : { kind: backend, baseURL: url, overridden: true, attempts: [] };
  }

  const fetchFn = options.fetch ?? globalThis.fetch;
  const timeoutMs = options.timeoutMs ?? 1500;
  // One request per distinct URL: MAX and llama.cpp on the same host:8080 share one answer.
  const answers = new Map<string, Promise<Answer>>();
  const get = (url: string): Promise<Answer> => {
    let a = answers.get(url);
    if (!a) {
      a = fetchFn(url, { signal: AbortSignal.timeout(timeoutMs) }).then(
        async (res) => ({ status: res.status, body: (await res.text().catch(() => "")).slice(0, 4096) }),
        (err: unknown) => ({ error: describe(err) }),
      );
      answers.set(url, a);
    }
    return a;
  };

  const probes: { kind: ProbeAttempt["kind"]; base: string; url: string; judge: (a: Answer) => ProbedKind | undefined }[] = [
    { kind: "ollama", base: hosts.ollama, url: `${hosts.ollama}/api/tags`, judge: (a) => ("status" in a && a.status === 200 && isOllamaTags(a.body) ? "ollama" : undefined) },
    { kind: "vllm", base: hosts.vllm, url: `${hosts.vllm}/health`, judge: (a) => ("status" in a && a.status === 200 ? "vllm" : undefined) },
    { kind: "sglang", base: hosts.sglang, url: `${hosts.sglang}/health`, judge: (a) => ("status" in a && a.status === 200 ? "sglang" : undefined) },
    { kind: "max", base: hosts.max, url: `${hosts.max}/health`, judge: (a) => ("status" in a && a.status === 200 && llamaCppFlavour(a) === undefined ? "max" : undefined) },
    { kind: "llama.cpp", base: hosts.llamaServer, url: `${hosts.llamaServer}/health`, judge: (a) => llamaCppFlavour(a) },
  ];
  const settled = await Promise.all(probes.map(async (p) => ({ probe: p, answer: await get(p.url) })));
  const attempts: ProbeAttempt[] = [];
  let chosen: { kind: ProbedKind; baseURL: string } | undefined;
  for (const { probe, answer } of settled) {
    const kind = probe.judge(answer);
    attempts.push({ kind: probe.kind, url: probe.url, ok: kind !== undefined, detail: describeAnswer(answer) });
    if (kind && !chosen) chosen = { kind, baseURL: probe.base };
  }
  return chosen ? { ...chosen, overridden: false, attempts } : { kind: "embedded", overridden: false, attempts };
}

function isOllamaTags(body: string): boolean {
  try {
    return Array.isArray((JSON.parse(body) as { models?: unknown }).models);
  } catch {
    return false;
  }
}

function llamaCppFlavour(a: Answer): "llama-server" | "llama-swap" | undefined {
  if (!("status" in a)) return undefined;
  if (a.status === 200 && a.body.trim() === "OK") return "llama-swap";
  try {
    const json = JSON.parse(a.body) as { status?: unknown; error?: { message?: unknown } };
    if (a.status === 200 && json.status === "ok") return "llama-server";
    if (a.status === 503 && json.error?.message === "Loading model") return "llama-server";
  } catch {
    // not llama.cpp's JSON
  }
  return undefined;
}

function describeAnswer(a: Answer): string {
  if ("error" in a) return a.error;
  const body = a.body.trim();
  return `HTTP ${a.status}${body ? `: ${body.slice(0, 80)}` : ""}`;
}

function describe(err: unknown): string {
  const e = err as { name?: string; cause?: { code?: string }; message?: string };
  if (e?.name === "TimeoutError") return "no answer in time";
  return e?.cause?.code ?? e?.message ?? String(err);
}
