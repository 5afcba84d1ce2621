import { startFakeOllama, startFakeOpenAICompatible, type FakeOpenAIOptions } from "@tessera/testkit";
import { afterEach, describe, expect, it } from "vitest";
import { BACKEND_SETTINGS, normalizeHost } from "../../src/backends/backend-settings.js";
import { createBackendAdapter } from "../../src/backends/create-backend-adapter.js";
import { probeBackends, type ProbeHosts } from "../../src/backends/probe-backends.js";

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  await Promise.all(closers.splice(0).map((c) => c()));
});

async function openai(flavour: FakeOpenAIOptions["flavour"]) {
  const f = await startFakeOpenAICompatible({ flavour, models: ["m"] });
  closers.push(() => f.http.close());
  return f.url;
}
async function ollama() {
  const f = await startFakeOllama();
  closers.push(() => f.http.close());
  return f.url;
}
/** A port where nothing listens: a fake that started and went down. */
async function nothing() {
  const f = await startFakeOpenAICompatible({ flavour: "vllm", models: [] });
  await f.http.goDown();
  return f.url;
}

async function allDown(): Promise<Required<ProbeHosts>> {
  const url = await nothing();
  return { ollama: url, vllm: url, sglang: url, max: url, llamaServer: url };
}

describe("probeBackends: order at daemon start", () => {
  it("nothing answers: embedded, with every attempt explained", async () => {
    const result = await probeBackends({ hosts: await allDown(), timeoutMs: 500 });
    expect(result.kind).toBe("embedded");
    expect(result.baseURL).toBeUndefined();
    expect(result.attempts.map((a) => a.kind)).toEqual(["ollama", "vllm", "sglang", "max", "llama.cpp"]);
    expect(result.attempts.every((a) => !a.ok && a.detail === "ECONNREFUSED")).toBe(true);
  });

  it.each([
    ["ollama", "ollama"],
    ["vllm", "vllm"],
    ["sglang", "sglang"],
    ["max", "max"],
    ["llamaServer", "llama-server"],
  ] as const)("only %s answers: %s is chosen at its URL", async (slot, kind) => {
    const hosts = await allDown();
    const url = slot === "ollama" ? await ollama() : await openai(slot === "llamaServer" ? "llama-server" : slot);
    hosts[slot] = url;
    const result = await probeBackends({ hosts, timeoutMs: 500 });
    expect(result).toMatchObject({ kind, baseURL: url, overridden: false });
  });

  it("first in order wins: Ollama before vLLM before SGLang", async () => {
    const hosts = await allDown();
    hosts.vllm = await openai("vllm");
    hosts.sglang = await openai("sglang");
    expect((await probeBackends({ hosts, timeoutMs: 500 })).kind).toBe("vllm");
    hosts.ollama = await ollama();
    expect((await probeBackends({ hosts, timeoutMs: 500 })).kind).toBe("ollama");
  });

  it("MAX and llama.cpp on the same :8080 are told apart by their /health body", async () => {
    const hosts = await allDown();
    hosts.max = hosts.llamaServer = await openai("llama-server");
    expect((await probeBackends({ hosts, timeoutMs: 500 })).kind).toBe("llama-server");
    hosts.max = hosts.llamaServer = await openai("llama-swap");
    expect((await probeBackends({ hosts, timeoutMs: 500 })).kind).toBe("llama-swap");
    hosts.max = hosts.llamaServer = await openai("max");
    expect((await probeBackends({ hosts, timeoutMs: 500 })).kind).toBe("max");
  });

  it("a vLLM /health that is not 200 (still loading) does not win", async () => {
    const f = await startFakeOpenAICompatible({ flavour: "vllm", models: ["m"] });
    closers.push(() => f.http.close());
    f.loading = true;
    const hosts = await allDown();
    hosts.vllm = f.url;
    const result = await probeBackends({ hosts, timeoutMs: 500 });
    expect(result.kind).toBe("embedded");
    expect(result.attempts[1]).toMatchObject({ kind: "vllm", ok: false, detail: "HTTP 503" });
  });

  it("an explicit backend setting overrides probing, even when another backend answers", async () => {
    const hosts = await allDown();
    hosts.ollama = await ollama();
    let calls = 0;
    const countingFetch: typeof fetch = (input, init) => {
      calls++;
      return fetch(input, init);
    };
    expect(await probeBackends({ hosts, backend: "sglang", fetch: countingFetch })).toEqual({
      kind: "sglang",
      baseURL: hosts.sglang,
      overridden: true,
      attempts: [],
    });
    expect(await probeBackends({ hosts, backend: "embedded" })).toEqual({ kind: "embedded", overridden: true, attempts: [] });
    expect(calls).toBe(0);
  });

  it("default hosts are the documented ports", async () => {
    const seen: string[] = [];
    const recording: typeof fetch = async (input) => {
      seen.push(String(input));
      throw new TypeError("fetch failed");
    };
    await probeBackends({ fetch: recording });
    expect(seen).toEqual([
      "http://127.0.0.1:11434/api/tags",
      "http://127.0.0.1:8000/health",
      "http://127.0.0.1:30000/health",
      "http://127.0.0.1:8080/health",
    ]);
  });
});

describe("normalizeHost", () => {
  it.each([
    ["0.0.0.0:11434", 11434, "http://127.0.0.1:11434"],
    ["gpu-box", 11434, "http://gpu-box:11434"],
    ["http://gpu-box", 8000, "http://gpu-box:8000"],
    ["http://gpu-box:9000/", 8000, "http://gpu-box:9000"],
    ["https://proxy.example/", 8000, "https://proxy.example"],
    ["http://10.0.0.2:80", 8000, "http://10.0.0.2"],
  ])("%s → %s", (value, port, expected) => {
    expect(normalizeHost(value, port)).toBe(expected);
  });
});

describe("settings table and adapter factory", () => {
  it("names every backend setting with its env var and default", () => {
    const byKey = Object.fromEntries(BACKEND_SETTINGS.map((s) => [s.key, s]));
    expect(byKey.backend).toMatchObject({ env: "TESSERA_BACKEND", default: "auto" });
    expect(byKey.ollama_host).toMatchObject({ env: "OLLAMA_HOST", default: "http://127.0.0.1:11434" });
    expect(byKey.vllm_host).toMatchObject({ env: "VLLM_HOST", default: "http://127.0.0.1:8000" });
    expect(byKey.sglang_host).toMatchObject({ env: "SGLANG_HOST", default: "http://127.0.0.1:30000" });
    expect(byKey.max_host).toMatchObject({ env: "MAX_HOST", default: "http://127.0.0.1:8080" });
    expect(byKey.llama_server_host).toMatchObject({ env: "LLAMA_SERVER_HOST", default: "http://127.0.0.1:8080" });
  });

  it("builds the adapter the probe chose; embedded is left to the daemon", async () => {
    const hosts = await allDown();
    hosts.sglang = await openai("sglang");
    const choice = await probeBackends({ hosts, timeoutMs: 500 });
    const adapter = createBackendAdapter(choice);
    expect(adapter?.kind).toBe("sglang");
    expect(await adapter?.listModels()).toEqual([{ id: "m", loaded: true }]);
    expect(createBackendAdapter({ kind: "embedded" })).toBeUndefined();
    expect(() => createBackendAdapter({ kind: "max" })).toThrow(expect.objectContaining({ code: "bad_request" }));
  });
});
