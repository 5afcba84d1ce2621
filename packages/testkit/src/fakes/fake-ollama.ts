import { createHash } from "node:crypto";
import type { ServerResponse } from "node:http";
import type { FakeBehaviour } from "./fake-behaviour.js";
import { FakeHttpServer, pumpTokens, sendJson, sendText, type RouteHandler } from "./fake-http-server.js";
import { countPromptTokens, fakeLogprob, planReply, tokenize } from "./fake-tokens.js";
import { plannedToolCall } from "./fake-tools.js";
import { type OllamaGenerateBody, ollamaDoneFields, writeOllamaGenerate } from "./fake-ollama-generate.js";
import { FAKE_EMBEDDING_DIMENSION, writeOllamaEmbed } from "./fake-embeddings.js";
import { type FakeOllamaVocabulary, writeOllamaShow } from "./fake-ollama-show.js";

export { type FakeOllamaVocabulary, FAKE_OLLAMA_GO_TEMPLATE } from "./fake-ollama-show.js";

/**
 * A fake Ollama speaking the native API at its real wire format (docs/api.md of ollama/ollama):
 * - `POST /api/chat`: NDJSON stream (one JSON object per line; `stream` defaults to true), each
 *   `{model, created_at, message:{role:"assistant", content}, done:false}`, then a final object with `done:true`,
 *   `done_reason` (`stop` | `length`), `prompt_eval_count`, `eval_count` and durations in nanoseconds; with
 *   `logprobs:true` each chunk carries `logprobs:[{token, logprob, bytes, top_logprobs}]`. A mid-stream failure is a
 *   line `{"error":"…"}`. An unknown model is `404 {"error":"model \"x\" not found, try pulling it first"}`.
 *   A trailing assistant message is continued (Ollama's templates leave the last assistant turn open).
 * - `POST /api/generate` (fake-ollama-generate.ts): raw prompts, `response` text on each NDJSON line.
 * - `POST /api/show` (fake-ollama-show.ts): template, Modelfile and GGUF metadata (`model_info`).
 * - `GET /api/tags`, `GET /api/ps` (loaded models with `expires_at`, `size_vram`), `GET /api/version`, `GET /`.
 * - `POST /api/pull`: NDJSON progress `{"status":"pulling manifest"}`, `{"status":"pulling <digest>", digest, total,
 *   completed}` …, `verifying sha256 digest`, `writing manifest`, `success`; unknown names stream
 *   `{"error":"pull model manifest: file does not exist"}`.
 * - `DELETE /api/delete {model}`: 200 with an empty body, or 404 `{"error":"model 'x' not found"}`.
 * - tools: with `tools` offered the fake calls the first one (fake-tools.ts; Ollama has no tool_choice): a line with
 *   `message:{content:"", tool_calls:[{function:{name, arguments:{…}}}]}` (whole calls, no ids, arguments an object),
 *   then the final line. `format` is accepted (and recorded in `http.requests`), not acted on.
 * Names without a tag get `:latest`, as Ollama does.
 */
export interface FakeOllamaModel {
  name: string;
  sizeBytes: number;
  parameterSize?: string;
  quantization?: string;
  /** An embedding model (family `bert`): `/api/embed` answers for it (and for no other model). */
  embedding?: boolean;
  /** A Jinja chat template `/api/show` reports as `template`; undefined: Ollama's own Go template (fake-ollama-show.ts). */
  chatTemplate?: string;
  /** The vocabulary in `/api/show`'s `model_info` (fake-ollama-show.ts has a small default). */
  vocabulary?: FakeOllamaVocabulary;
  /**
   * The GGUF blob `/api/show`'s Modelfile names in its `FROM` line (`…/blobs/sha256-<64 hex>`); its hex is the model
   * layer's digest. Default: a path under `/root/.ollama` named by a digest made from the model's name.
   */
  ggufPath?: string;
}

export interface FakeOllamaOptions {
  /** Models installed at start. */
  installed?: FakeOllamaModel[];
  /** What `/api/pull` can fetch ("the registry"). Installed models are pullable too. */
  registry?: FakeOllamaModel[];
  /** Progress lines per layer during a pull. */
  pullSteps?: number;
  /** Delay between pull progress lines. */
  pullStepMs?: number;
  behaviour?: Partial<FakeBehaviour>;
}

export class FakeOllama {
  readonly http: FakeHttpServer;
  readonly installed = new Map<string, FakeOllamaModel>();
  /** Loaded models and when they unload (ms since epoch, or Infinity for keep_alive < 0). */
  readonly loaded = new Map<string, number>();
  private readonly registry = new Map<string, FakeOllamaModel>();
  private readonly pullSteps: number;
  private readonly pullStepMs: number;

  constructor(options: FakeOllamaOptions = {}) {
    for (const m of options.installed ?? []) this.installed.set(normaliseName(m.name), { ...m, name: normaliseName(m.name) });
    for (const m of [...(options.installed ?? []), ...(options.registry ?? [])]) {
      this.registry.set(normaliseName(m.name), { ...m, name: normaliseName(m.name) });
    }
    this.pullSteps = options.pullSteps ?? 4;
    this.pullStepMs = options.pullStepMs ?? 0;
    this.http = new FakeHttpServer((method, path) => this.route(method, path));
    this.http.setBehaviour(options.behaviour ?? {});
  }

  get url(): string {
    return this.http.url;
  }

  private route(method: string, path: string): RouteHandler | undefined {
    const key = `${method} ${path}`;
    switch (key) {
      case "GET /":
      case "HEAD /":
        return (_q, res) => sendText(res, 200, "Ollama is running");
      case "GET /api/version":
        return (_q, res) => sendJson(res, 200, { version: "0.12.6" });
      case "GET /api/tags":
        return (_q, res) => sendJson(res, 200, { models: [...this.installed.values()].map((m) => this.describe(m)) });
      case "GET /api/ps":
        return (_q, res) => this.ps(res);
      case "POST /api/chat":
        return (_q, res, body) => this.chat(res, body);
      case "POST /api/embed":
        return (_q, res, body) => this.embed(res, body as { model?: unknown; input?: unknown });
      case "POST /api/show":
        return (_q, res, body) => this.show(res, body as { model?: unknown; name?: unknown; verbose?: unknown });
      case "POST /api/generate":
        return (_q, res, body) => this.generate(res, body as OllamaGenerateBody);
      case "POST /api/pull":
        return (_q, res, body) => this.pull(res, body);
      case "DELETE /api/delete":
        return (_q, res, body) => this.remove(res, body);
      default:
        return undefined;
    }
  }

  private describe(m: FakeOllamaModel) {
    return {
      name: m.name,
      model: m.name,
      modified_at: "2025-01-01T00:00:00Z",
      size: m.sizeBytes,
      // Ollama's `digest` here is the SHA-256 of the manifest JSON (plain hex), not of the GGUF blob.
      digest: manifestDigest(m),
      details: {
        parent_model: "",
        format: "gguf",
        family: m.embedding ? "bert" : "llama",
        families: [m.embedding ? "bert" : "llama"],
        parameter_size: m.parameterSize ?? "7.6B",
        quantization_level: m.quantization ?? "Q4_K_M",
      },
    };
  }

  private ps(res: ServerResponse): void {
    const now = Date.now();
    const models = [];
    for (const [name, until] of this.loaded) {
      const m = this.installed.get(name);
      if (!m || until <= now) continue;
      models.push({
        ...this.describe(m),
        expires_at: Number.isFinite(until) ? new Date(until).toISOString() : "2318-08-01T00:00:00Z",
        size_vram: m.sizeBytes,
      });
    }
    sendJson(res, 200, { models });
  }

  /** `POST /api/embed` (fake-embeddings.ts): a model without embeddings is a 400, as Ollama answers for one. */
  private embed(res: ServerResponse, body: { model?: unknown; input?: unknown }): void {
    if (typeof body?.model !== "string" || body.model === "") return sendJson(res, 400, { error: "model is required" });
    const name = normaliseName(body.model);
    const model = this.installed.get(name);
    if (!model) return sendJson(res, 404, { error: `model "${body.model}" not found, try pulling it first` });
    if (!model.embedding) return sendJson(res, 400, { error: `"${body.model}" does not support embeddings` });
    this.loaded.set(name, Date.now() + keepAliveMs(undefined));
    writeOllamaEmbed(res, name, body, FAKE_EMBEDDING_DIMENSION);
  }

  private show(res: ServerResponse, body: { model?: unknown; name?: unknown; verbose?: unknown }): void {
    const requested = body?.model ?? body?.name;
    if (typeof requested !== "string" || requested === "") return sendJson(res, 400, { error: "model is required" });
    const model = this.installed.get(normaliseName(requested));
    if (!model) return sendJson(res, 404, { error: `model '${requested}' not found` });
    writeOllamaShow(res, model, body.verbose === true, `sha256:${blobDigest(model)}`);
  }

  private generate(res: ServerResponse, body: OllamaGenerateBody): void {
    if (typeof body?.model !== "string" || body.model === "") return sendJson(res, 400, { error: "model is required" });
    const name = normaliseName(body.model);
    if (!this.installed.has(name)) return sendJson(res, 404, { error: `model "${body.model}" not found, try pulling it first` });
    this.loaded.set(name, Date.now() + keepAliveMs(undefined));
    writeOllamaGenerate(res, name, body, this.http.behaviour);
  }

  private chat(res: ServerResponse, raw: unknown): void {
    const body = raw as {
      model?: string;
      messages?: { role: string; content: string }[];
      stream?: boolean;
      options?: { num_predict?: number };
      tools?: { type?: string; function?: { name?: string } }[];
      keep_alive?: string | number;
      logprobs?: boolean;
    };
    if (typeof body?.model !== "string" || body.model === "") {
      sendJson(res, 400, { error: "model is required" });
      return;
    }
    const name = normaliseName(body.model);
    if (!this.installed.has(name)) {
      sendJson(res, 404, { error: `model "${body.model}" not found, try pulling it first` });
      return;
    }
    const messages = body.messages ?? [];
    this.loaded.set(name, Date.now() + keepAliveMs(body.keep_alive));
    if (messages.length === 0) {
      // Ollama's load / unload request: an empty chat with keep_alive.
      if (keepAliveMs(body.keep_alive) === 0) this.loaded.delete(name);
      sendJson(res, 200, {
        model: name,
        created_at: new Date().toISOString(),
        message: { role: "assistant", content: "" },
        done_reason: keepAliveMs(body.keep_alive) === 0 ? "unload" : "load",
        done: true,
      });
      return;
    }
    const toolName = plannedToolCall({ tools: body.tools });
    if (toolName !== undefined) {
      const args = this.http.behaviour.toolArguments;
      const message = { role: "assistant", content: "", tool_calls: [{ function: { name: toolName, arguments: JSON.parse(args) as unknown } }] };
      const done = {
        model: name,
        created_at: new Date().toISOString(),
        done: true,
        done_reason: "stop",
        prompt_eval_count: countPromptTokens(messages),
        eval_count: tokenize(args).length,
      };
      if (body.stream === false) {
        sendJson(res, 200, { ...done, message });
        return;
      }
      res.writeHead(200, { "content-type": "application/x-ndjson" });
      res.write(JSON.stringify({ model: name, created_at: new Date().toISOString(), message, done: false }) + "\n");
      res.end(JSON.stringify({ ...done, message: { role: "assistant", content: "" } }) + "\n");
      return;
    }
    const last = messages[messages.length - 1];
    const prefix = last.role === "assistant" ? last.content : undefined;
    const lastUser = [...messages].reverse().find((m) => m.role === "user")?.content ?? "";
    const reply = typeof this.http.behaviour.reply === "function" ? this.http.behaviour.reply(lastUser) : this.http.behaviour.reply;
    const numPredict = body.options?.num_predict;
    const plan = planReply(reply, numPredict !== undefined && numPredict >= 0 ? numPredict : undefined, prefix);
    const promptTokens = countPromptTokens(messages);
    const wantLogprobs = body.logprobs === true;
    const logprobsOf = (i: number, token: string) => ({
      token,
      logprob: fakeLogprob(i),
      bytes: [...Buffer.from(token, "utf8")],
      top_logprobs: [],
    });
    const final = () => ({
      model: name,
      created_at: new Date().toISOString(),
      message: { role: "assistant", content: "" },
      ...ollamaDoneFields(plan.finish, promptTokens, plan.tokens.length),
    });

    if (body.stream === false) {
      const behaviour = this.http.behaviour;
      if (behaviour.failAfterTokens !== undefined) {
        sendJson(res, 500, { error: "llama runner process has terminated: exit status 2" });
        return;
      }
      const content = plan.tokens.join("");
      const result: Record<string, unknown> = { ...final(), message: { role: "assistant", content } };
      if (wantLogprobs) result.logprobs = plan.tokens.map((t, i) => logprobsOf(i, t));
      sendJson(res, 200, result);
      return;
    }

    res.writeHead(200, { "content-type": "application/x-ndjson" });
    pumpTokens(res, this.http.behaviour, {
      count: plan.tokens.length,
      emit: (i) => {
        const chunk: Record<string, unknown> = {
          model: name,
          created_at: new Date().toISOString(),
          message: { role: "assistant", content: plan.tokens[i] },
          done: false,
        };
        if (wantLogprobs) chunk.logprobs = [logprobsOf(i, plan.tokens[i])];
        res.write(JSON.stringify(chunk) + "\n");
      },
      fail: () => {
        res.end(JSON.stringify({ error: "llama runner process has terminated: exit status 2" }) + "\n");
      },
      finish: () => {
        res.end(JSON.stringify(final()) + "\n");
      },
    });
  }

  private async pull(res: ServerResponse, raw: unknown): Promise<void> {
    const body = raw as { model?: string; name?: string; stream?: boolean };
    const requested = body?.model ?? body?.name;
    if (typeof requested !== "string" || requested === "") {
      sendJson(res, 400, { error: "model is required" });
      return;
    }
    const name = normaliseName(requested);
    const entry = this.registry.get(name);
    if (body.stream === false) {
      if (!entry) {
        sendJson(res, 500, { error: "pull model manifest: file does not exist" });
        return;
      }
      this.installed.set(name, entry);
      sendJson(res, 200, { status: "success" });
      return;
    }
    res.writeHead(200, { "content-type": "application/x-ndjson" });
    const line = (o: unknown) => res.write(JSON.stringify(o) + "\n");
    line({ status: "pulling manifest" });
    if (!entry) {
      res.end(JSON.stringify({ error: "pull model manifest: file does not exist" }) + "\n");
      return;
    }
    const digest = `sha256:${blobDigest(entry)}`;
    const total = entry.sizeBytes;
    for (let step = 1; step <= this.pullSteps; step++) {
      if (this.pullStepMs > 0) await new Promise((r) => setTimeout(r, this.pullStepMs));
      if (res.destroyed) return;
      const completed = Math.round((total * step) / this.pullSteps);
      line({ status: `pulling ${digest.slice(7, 19)}`, digest, total, completed });
    }
    line({ status: "verifying sha256 digest" });
    line({ status: "writing manifest" });
    this.installed.set(name, entry);
    res.end(JSON.stringify({ status: "success" }) + "\n");
  }

  private remove(res: ServerResponse, raw: unknown): void {
    const body = raw as { model?: string; name?: string };
    const requested = body?.model ?? body?.name;
    if (typeof requested !== "string" || requested === "") {
      sendJson(res, 400, { error: "model is required" });
      return;
    }
    const name = normaliseName(requested);
    if (!this.installed.delete(name)) {
      sendJson(res, 404, { error: `model '${requested}' not found` });
      return;
    }
    this.loaded.delete(name);
    res.writeHead(200, { "content-length": 0 });
    res.end();
  }
}

export async function startFakeOllama(options: FakeOllamaOptions = {}): Promise<FakeOllama> {
  const fake = new FakeOllama(options);
  await fake.http.listen();
  return fake;
}

function normaliseName(name: string): string {
  return name.includes(":") ? name : `${name}:latest`;
}

/** Ollama's keep_alive: a duration string ("5m", "30s", "1h"), seconds as a number, negative = forever. */
function keepAliveMs(value: string | number | undefined): number {
  if (value === undefined) return 5 * 60_000;
  if (typeof value === "number") return value < 0 ? Infinity : value * 1000;
  const m = /^(-?\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(value);
  if (!m) return 5 * 60_000;
  const n = Number(m[1]);
  if (n < 0) return Infinity;
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] ?? "s"] ?? 1000;
  return n * unit;
}

/** The model layer's digest (the GGUF blob's SHA-256): the hex of `ggufPath`'s blob name, or one made from the name. */
function blobDigest(m: FakeOllamaModel): string {
  const named = m.ggufPath === undefined ? undefined : /sha256[-:]([0-9a-f]{64})$/.exec(m.ggufPath)?.[1];
  return named ?? createHash("sha256").update(`fake-ollama-blob\n${m.name}`).digest("hex");
}

/** What `/api/tags` and `/api/ps` call `digest`: the manifest's SHA-256, which changes with any layer (the blob too). */
function manifestDigest(m: FakeOllamaModel): string {
  return createHash("sha256").update(`fake-ollama-manifest\n${m.name}\n${blobDigest(m)}`).digest("hex");
}
