import { useEffect, useRef, useState } from "preact/hooks";
import type { ChatMessage, JobView, ModelsResponse } from "@tessera/protocol";
import { api, describeError, openStream, sseData } from "../api.js";
import { ErrorNote } from "../components/status.js";
import { shortId } from "../format.js";

interface Turn {
  role: "user" | "assistant";
  content: string;
  /** For an answer: the job, and the node that answered once the job is done. */
  job?: string;
  node?: string;
  tokens?: number;
}

/** The sampling defaults the jobs API applies (packages/protocol/src/v1/sampling.ts). */
const DEFAULTS = { max_tokens: 256, temperature: 0.7, top_p: 1 };

/**
 * Chat with a model through the native jobs API (`POST /api/v1/jobs`, `stream: true`) as the signed-in key: tokens
 * appear as they are relayed; when the job ends, its record names the node that answered.
 */
export function PlaygroundPage() {
  const [models, setModels] = useState<string[]>([]);
  const [model, setModel] = useState("");
  const [prompt, setPrompt] = useState("");
  const [turns, setTurns] = useState<Turn[]>([]);
  const [params, setParams] = useState({ ...DEFAULTS, seed: "", json: false });
  const [error, setError] = useState<string>();
  const [running, setRunning] = useState(false);
  const abort = useRef<AbortController | null>(null);

  useEffect(() => {
    api<ModelsResponse>("GET", "/dashboard/api/v1/models").then(
      (r) => {
        setModels(r.models.map((m) => m.id));
        setModel((current) => current || r.models[0]?.id || "");
      },
      (err: unknown) => setError(describeError(err)),
    );
    return () => abort.current?.abort();
  }, []);

  const send = async (e: Event) => {
    e.preventDefault();
    if (!prompt.trim() || !model || running) return;
    setError(undefined);
    const history: ChatMessage[] = [...turns.map((t) => ({ role: t.role, content: t.content })), { role: "user", content: prompt }];
    setTurns([...turns, { role: "user", content: prompt }, { role: "assistant", content: "" }]);
    setPrompt("");
    setRunning(true);
    abort.current = new AbortController();
    const update = (patch: Partial<Turn>) => setTurns((ts) => [...ts.slice(0, -1), { ...ts.at(-1)!, ...patch }]);
    try {
      const body = {
        model,
        messages: history,
        stream: true,
        max_tokens: params.max_tokens,
        temperature: params.temperature,
        top_p: params.top_p,
        ...(params.seed !== "" ? { seed: Number(params.seed) } : {}),
        ...(params.json ? { response_format: { type: "json_object" } } : {}),
      };
      const res = await openStream("POST", "/dashboard/api/v1/jobs", body, abort.current.signal);
      const job = res.headers.get("x-tessera-job-id") ?? undefined;
      let text = "";
      update({ ...(job ? { job } : {}) });
      for await (const data of sseData(res)) {
        if (data === "[DONE]") break;
        const event = JSON.parse(data) as { text?: string; error?: string; message?: string };
        if (event.error) throw new Error(`${event.message ?? event.error} (${event.error})`);
        if (event.text) {
          text += event.text;
          update({ content: text });
        }
      }
      if (job) {
        const view = await api<JobView>("GET", `/dashboard/api/v1/jobs/${encodeURIComponent(job)}`);
        update({ ...(view.node_id ? { node: view.node_id } : {}), ...(view.result ? { tokens: view.result.usage.completion_tokens } : {}) });
      }
    } catch (err) {
      if ((err as Error).name !== "AbortError") setError(describeError(err));
    } finally {
      setRunning(false);
      abort.current = null;
    }
  };

  const num = (name: "max_tokens" | "temperature" | "top_p") => (e: Event) => setParams({ ...params, [name]: Number((e.target as HTMLInputElement).value) });

  return (
    <section aria-labelledby="playground-title">
      <h1 id="playground-title">Playground</h1>
      <form class="playground" onSubmit={(e) => void send(e)}>
        <fieldset class="params">
          <legend>Model and sampling</legend>
          <label>
            Model
            <select value={model} onChange={(e) => setModel((e.target as HTMLSelectElement).value)} required>
              {models.length === 0 ? <option value="">no model online</option> : null}
              {models.map((m) => <option key={m} value={m}>{m}</option>)}
            </select>
          </label>
          <label>
            Max tokens
            <input type="number" min={1} max={8192} value={params.max_tokens} onInput={num("max_tokens")} />
          </label>
          <label>
            Temperature
            <input type="number" min={0} max={2} step={0.1} value={params.temperature} onInput={num("temperature")} />
          </label>
          <label>
            Top p
            <input type="number" min={0.01} max={1} step={0.01} value={params.top_p} onInput={num("top_p")} />
          </label>
          <label>
            Seed (optional)
            <input type="number" min={0} value={params.seed} onInput={(e) => setParams({ ...params, seed: (e.target as HTMLInputElement).value })} />
          </label>
          <label class="check">
            <input type="checkbox" checked={params.json} onChange={(e) => setParams({ ...params, json: (e.target as HTMLInputElement).checked })} />
            JSON mode
          </label>
        </fieldset>
        <ol class="transcript" aria-live="polite" aria-label="Conversation">
          {turns.map((t, i) => (
            <li key={i} class={`turn ${t.role}`} data-testid={`turn-${t.role}`}>
              <div class="who-said">{t.role === "user" ? "You" : model}</div>
              <div class="said">{t.content || (t.role === "assistant" && running && i === turns.length - 1 ? "…" : "")}</div>
              {t.node ? (
                <div class="meta" data-testid="answered-by">
                  answered by node <code title={t.node}>{shortId(t.node)}</code>
                  {t.tokens !== undefined ? ` · ${t.tokens} tokens` : ""}
                </div>
              ) : null}
            </li>
          ))}
        </ol>
        <ErrorNote message={error} />
        <label class="prompt">
          Message
          <textarea
            rows={3}
            value={prompt}
            onInput={(e) => setPrompt((e.target as HTMLTextAreaElement).value)}
            onKeyDown={(e) => {
              if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) void send(e);
            }}
            placeholder="Ask something (Ctrl+Enter sends)"
          />
        </label>
        <div class="actions">
          <button type="submit" disabled={running || !model || !prompt.trim()}>Send</button>
          <button type="button" disabled={!running} onClick={() => abort.current?.abort()}>Stop</button>
          <button type="button" disabled={running || turns.length === 0} onClick={() => setTurns([])}>Clear</button>
        </div>
      </form>
    </section>
  );
}
