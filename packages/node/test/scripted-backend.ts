import type { StreamPart } from "@tessera/protocol";
import type { BackendAdapter, GenerateRequest } from "../src/backends/adapter.js";
import { collectStream } from "../src/backends/adapter.js";

/**
 * A scripted BackendAdapter: each call yields `tokens` as text deltas (with `tokenIds` and tools offered: one call,
 * generated as those tokens, in one tool-calls part), then usage and finish. A test can hold a
 * call before a given token with `holdAt`, and release it later; an aborted call stops and yields finish:cancelled,
 * like the real adapters do.
 */
export class ScriptedBackend implements BackendAdapter {
  readonly kind = "scripted";
  readonly calls: GenerateRequest[] = [];
  readonly aborted: string[] = [];
  closed = false;
  private releases: Array<() => void> = [];

  constructor(
    private readonly tokens: string[],
    private readonly options: { models?: string[]; holdAt?: number; tokenIds?: boolean; sha256?: string } = {},
  ) {}

  async health() {
    return { ok: true as const };
  }

  async listModels() {
    return (this.options.models ?? ["tiny"]).map((id) => ({ id, loaded: true, sizeBytes: 1234, ...(this.options.sha256 ? { sha256: this.options.sha256 } : {}) }));
  }

  doGenerate(request: GenerateRequest) {
    return collectStream(this.doStream(request));
  }

  /** Lets every held call continue. */
  release(): void {
    for (const release of this.releases.splice(0)) release();
  }

  get held(): number {
    return this.releases.length;
  }

  async *doStream(request: GenerateRequest): AsyncIterable<StreamPart> {
    this.calls.push(request);
    const signal = request.signal;
    const tool = request.sampling.tools?.[0];
    if (this.options.tokenIds && tool) {
      const call = { id: "call_1", type: "function" as const, function: { name: tool.function.name, arguments: this.tokens.join("") } };
      yield { type: "tool-calls", calls: [call], tokens: this.tokens.map((_, i) => 100 + i) };
      yield { type: "usage", prompt_tokens: 3, completion_tokens: this.tokens.length };
      yield { type: "finish", reason: "stop" };
      return;
    }
    for (let i = 0; i < this.tokens.length; i++) {
      if (i === this.options.holdAt) {
        await new Promise<void>((resolve) => {
          this.releases.push(resolve);
          signal?.addEventListener("abort", () => resolve(), { once: true });
        });
      }
      if (signal?.aborted) {
        this.aborted.push(request.model);
        yield { type: "usage", prompt_tokens: 3, completion_tokens: i };
        yield { type: "finish", reason: "cancelled" };
        return;
      }
      yield this.options.tokenIds ? { type: "text-delta", text: this.tokens[i]!, tokens: [100 + i] } : { type: "text-delta", text: this.tokens[i]! };
    }
    yield { type: "usage", prompt_tokens: 3, completion_tokens: this.tokens.length };
    yield { type: "finish", reason: "stop" };
  }

  async close() {
    this.closed = true;
  }
}
