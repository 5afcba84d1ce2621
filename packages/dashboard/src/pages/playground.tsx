import { useEffect, useRef, useState } from "preact/hooks";
import type { ChatMessage, JobView, ModelsResponse, ToolCall } from "@tessera/protocol";
import { api, describeError, openStream, sseData } from "../api.js";
import { ErrorNote } from "../components/status.js";
import { shortId } from "../format.js";
import { EXAMPLE_TOOLS, parseToolsInput } from "../tools-input.js";

interface Turn {
  role: "user" | "assistant" | "tool";
  content: string;
  /** For an answer: the job, and the node that answered once the job is done. */
  job?: string;
  node?: string;
  tokens?: number;
  /** For an answer: the tools the model called (OpenAI's `tool_calls`). */
  toolCalls?: ToolCall[];
  /** For a tool result: the call it answers. */
  toolCallId?: string;
  toolName?: string;
}

type ToolChoiceName = "auto" | "required" | "none";

/** The turns as the API takes them back: an answer that called tools carries its calls, a result names its call. */
function messagesOf(turns: Turn[]): ChatMessage[] {
  return turns.map((t): ChatMessage => {
    if (t.role === "tool") return { role: "tool", content: t.content, tool_call_id: t.toolCallId! };
    if (t.role === "assistant" && t.toolCalls?.length) return { role: "assistant", content: t.content, tool_calls: t.toolCalls };
    return { role: t.role, content: t.content };
  });
}

/** The first call of the last answer that no tool result answers yet: the message box answers it. */
function pendingCall(turns: Turn[]): ToolCall | undefined {
  const last = turns.findLastIndex((t) => t.role === "assistant");
  const calls = turns[last]?.toolCalls ?? [];
  const answered = new Set(turns.slice(last + 1).map((t) => t.toolCallId));
  return calls.find((c) => !answered.has(c.id));
}

/** "2 of 3": which of the last answer's calls this is. */
function callNumber(turns: Turn[], call: ToolCall): string {
  const calls = turns.findLast((t) => t.role === "assistant")?.toolCalls ?? [];
  return `${calls.indexOf(call) + 1} of ${calls.length}`;
}

/** One chunk of `/v1/chat/completions`' stream, as far as the playground reads it. */
interface ChatChunk {
  id?: string;
  choices?: Array<{ delta?: { content?: string | null; tool_calls?: Array<{ index: number; id?: string; function?: { name?: string; arguments?: string } }> } }>;
  error?: { message?: string; code?: string };
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
  const [toolsText, setToolsText] = useState("");
  const [toolChoice, setToolChoice] = useState<ToolChoiceName>("auto");
  const toolsInput = parseToolsInput(toolsText);
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

  const pending = pendingCall(turns);

  const send = async (e: Event) => {
    e.preventDefault();
    if (!prompt.trim() || !model || running) return;
    if (!toolsInput.ok) return setError(toolsInput.error);
    setError(undefined);
    const said: Turn = pending ? { role: "tool", content: prompt, toolCallId: pending.id, toolName: pending.function.name } : { role: "user", content: prompt };
    // The model hears back only once every call of its answer has its result.
    if (pending && pendingCall([...turns, said])) {
      setTurns([...turns, said]);
      setPrompt("");
      return;
    }
    const history = messagesOf([...turns, said]);
    setTurns([...turns, said, { role: "assistant", content: "" }]);
    setPrompt("");
    setRunning(true);
    abort.current = new AbortController();
    const update = (patch: Partial<Turn>) => setTurns((ts) => [...ts.slice(0, -1), { ...ts.at(-1)!, ...patch }]);
    const sampling = {
      model,
      messages: history,
      stream: true,
      max_tokens: params.max_tokens,
      temperature: params.temperature,
      top_p: params.top_p,
      ...(params.seed !== "" ? { seed: Number(params.seed) } : {}),
      ...(params.json ? { response_format: { type: "json_object" } } : {}),
    };
    try {
      let job: string | undefined;
      if (toolsInput.tools.length > 0 || history.some((m) => m.role === "tool")) {
        job = await streamWithTools({ ...sampling, ...(toolsInput.tools.length > 0 ? { tools: toolsInput.tools, tool_choice: toolChoice } : {}) }, abort.current.signal, update);
      } else {
        job = await streamJob(sampling, abort.current.signal, update);
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
        <fieldset class="tools">
          <legend>Tools</legend>
          <label>
            Tools (a JSON array of functions; empty: none)
            <textarea
              rows={toolsText ? 8 : 2}
              value={toolsText}
              onInput={(e) => setToolsText((e.target as HTMLTextAreaElement).value)}
              spellcheck={false}
              placeholder='[{"type": "function", "function": {"name": "get_weather", "parameters": {…}}}]'
              aria-invalid={!toolsInput.ok}
              aria-describedby="tools-check"
            />
          </label>
          <div class="actions">
            <label>
              Tool choice
              <select value={toolChoice} onChange={(e) => setToolChoice((e.target as HTMLSelectElement).value as ToolChoiceName)} disabled={!toolsInput.ok || toolsInput.tools.length === 0}>
                <option value="auto">auto (a call, or text)</option>
                <option value="required">required (a call)</option>
                <option value="none">none (text only)</option>
              </select>
            </label>
            <button type="button" onClick={() => setToolsText(EXAMPLE_TOOLS)}>Use an example tool</button>
          </div>
          <p id="tools-check" class={toolsInput.ok ? "note" : "error"} data-testid="tools-check">
            {toolsInput.ok
              ? toolsInput.tools.length > 0
                ? `${toolsInput.tools.length} tool${toolsInput.tools.length === 1 ? "" : "s"}: ${toolsInput.tools.map((t) => t.function.name).join(", ")} (sent through the OpenAI-compatible route)`
                : "No tools."
              : toolsInput.error}
          </p>
        </fieldset>
        <ol class="transcript" aria-live="polite" aria-label="Conversation">
          {turns.map((t, i) => (
            <li key={i} class={`turn ${t.role}`} data-testid={`turn-${t.role}`}>
              <div class="who-said">{t.role === "user" ? "You" : t.role === "tool" ? `Result of ${t.toolName ?? "the tool"} (you)` : model}</div>
              <div class="said">{t.content || (t.role === "assistant" && running && i === turns.length - 1 && !t.toolCalls ? "…" : "")}</div>
              {t.toolCalls?.length ? (
                <ul class="tool-calls" aria-label="Tool calls">
                  {t.toolCalls.map((c) => (
                    <li key={c.id} data-testid="tool-call">
                      calls <code data-testid="tool-call-name">{c.function.name}</code> with
                      <pre class="tool-args">{prettyArguments(c.function.arguments)}</pre>
                      <span class="meta">call id <code>{c.id}</code></span>
                    </li>
                  ))}
                </ul>
              ) : null}
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
          {pending ? `Result of ${pending.function.name} (call ${callNumber(turns, pending)}; sent back as the tool's answer)` : "Message"}
          <textarea
            rows={3}
            value={prompt}
            onInput={(e) => setPrompt((e.target as HTMLTextAreaElement).value)}
            onKeyDown={(e) => {
              if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) void send(e);
            }}
            placeholder={pending ? 'What the tool returned, e.g. {"temperature": 21} (Ctrl+Enter sends)' : "Ask something (Ctrl+Enter sends)"}
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

/** A call's arguments as indented JSON when they parse, else as the model wrote them. */
function prettyArguments(text: string): string {
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return text;
  }
}

/** A chat without tools on the native jobs API (`POST /api/v1/jobs`, streamed): returns the job id. */
async function streamJob(body: object, signal: AbortSignal, update: (patch: Partial<Turn>) => void): Promise<string | undefined> {
  const res = await openStream("POST", "/dashboard/api/v1/jobs", body, signal);
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
  return job;
}

/**
 * A chat with tools on the OpenAI-compatible route (the native jobs API has none), streamed: text as it comes, the
 * tool calls assembled from their deltas. Returns the job id (the completion id is `chatcmpl-<job id>`).
 */
async function streamWithTools(body: object, signal: AbortSignal, update: (patch: Partial<Turn>) => void): Promise<string | undefined> {
  const res = await openStream("POST", "/dashboard/api/openai/chat/completions", body, signal);
  let text = "";
  let job: string | undefined;
  const calls: ToolCall[] = [];
  for await (const data of sseData(res)) {
    if (data === "[DONE]") break;
    const chunk = JSON.parse(data) as ChatChunk;
    if (chunk.error) throw new Error(`${chunk.error.message ?? "error"} (${chunk.error.code ?? "internal_error"})`);
    if (!job && chunk.id?.startsWith("chatcmpl-")) {
      job = chunk.id.slice("chatcmpl-".length);
      update({ job });
    }
    const delta = chunk.choices?.[0]?.delta;
    if (delta?.content) {
      text += delta.content;
      update({ content: text });
    }
    for (const d of delta?.tool_calls ?? []) {
      const call = (calls[d.index] ??= { id: "", type: "function", function: { name: "", arguments: "" } });
      if (d.id) call.id = d.id;
      if (d.function?.name) call.function.name += d.function.name;
      if (d.function?.arguments) call.function.arguments += d.function.arguments;
      update({ toolCalls: calls.map((c) => ({ ...c, function: { ...c.function } })) });
    }
  }
  return job;
}
