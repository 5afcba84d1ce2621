import { randomBytes } from "node:crypto";
import type { ChatMessage, ToolCall, ToolDefinition } from "@tessera/protocol";
import { TOOL_CALL_MARKER } from "./output-grammar.js";

/**
 * How every canonical backend (embedded, llama-server) shows tools to a model: Tessera's one tool format: one
 * system instruction listing the functions and the call syntax the grammar enforces (output-grammar.ts), earlier
 * calls written back in that syntax, and tool results as `<tool_response>` user turns (the Hermes/Qwen convention, so
 * models trained on it read them natively). Pure but for the call ids.
 */
export function toolPromptMessages(messages: readonly ChatMessage[], callable: readonly ToolDefinition[], required: boolean): ChatMessage[] {
  const out: ChatMessage[] = messages.map((m): ChatMessage => {
    if (m.role === "assistant" && m.tool_calls) {
      const calls = m.tool_calls.map((c) => ({ name: c.function.name, arguments: parseOr(c.function.arguments) }));
      return { role: "assistant", content: `${m.content}${TOOL_CALL_MARKER}${JSON.stringify(calls)}` };
    }
    if (m.role === "tool") return { role: "user", content: `<tool_response>\n${m.content}\n</tool_response>` };
    return { role: m.role, content: m.content };
  });
  if (callable.length === 0) return out;
  const docs = callable.map((t) =>
    JSON.stringify({ name: t.function.name, description: t.function.description ?? "", parameters: t.function.parameters ?? { type: "object", properties: {} } }),
  );
  const instruction = [
    required ? "You must call one of these functions." : "You may call these functions when they help.",
    `To call, answer with ${TOOL_CALL_MARKER} followed by a JSON list of calls, [{"name": "<function name>", "arguments": {...}}], and nothing else.`,
    "Results come back as <tool_response> messages.",
    "Functions:",
    ...docs,
  ].join("\n");
  const first = out[0];
  if (first?.role === "system") out[0] = { role: "system", content: `${first.content}\n\n${instruction}` };
  else out.unshift({ role: "system", content: instruction });
  return out;
}

/** The calls in a tool-call answer (`<tool_call>[…]`), with fresh ids; undefined when the text is not a whole one. */
export function parseToolCalls(text: string, newId: () => string = defaultCallId): ToolCall[] | undefined {
  if (!text.startsWith(TOOL_CALL_MARKER)) return undefined;
  let list: unknown;
  try {
    list = JSON.parse(text.slice(TOOL_CALL_MARKER.length));
  } catch {
    return undefined;
  }
  if (!Array.isArray(list) || list.length === 0) return undefined;
  const calls: ToolCall[] = [];
  for (const item of list) {
    const call = item as { name?: unknown; arguments?: unknown };
    if (typeof call?.name !== "string") return undefined;
    calls.push({ id: newId(), type: "function", function: { name: call.name, arguments: JSON.stringify(call.arguments ?? {}) } });
  }
  return calls;
}

/**
 * The calls in a tool-call answer cut short (max_tokens): each whole call, then the last one as far as it got (its
 * arguments the JSON text written so far, `""` when none), as OpenAI answers a call cut by max_tokens: the calls with
 * `finish_reason: "length"`, never the call syntax as text. Undefined when not even the first call's name is whole.
 */
export function parsePartialToolCalls(text: string, newId: () => string = defaultCallId): ToolCall[] | undefined {
  if (!text.startsWith(TOOL_CALL_MARKER)) return undefined;
  const body = text.slice(TOOL_CALL_MARKER.length);
  const open = body.indexOf("[");
  if (open === -1) return undefined;
  const calls: ToolCall[] = [];
  const call = (name: string, args: string): ToolCall => ({ id: newId(), type: "function", function: { name, arguments: args } });
  // The list's elements, found by depth outside strings (the grammar writes each call as one object).
  let depth = 0;
  let inString = false;
  let escaped = false;
  let start = -1;
  for (let i = open + 1; i < body.length && depth >= 0; i++) {
    const c = body[i];
    if (inString) {
      if (escaped) escaped = false;
      else if (c === "\\") escaped = true;
      else if (c === '"') inString = false;
    } else if (c === '"') {
      inString = true;
    } else if (c === "{" || c === "[") {
      if (depth === 0) start = i;
      depth++;
    } else if (c === "}" || c === "]") {
      depth--;
      if (depth === 0 && start !== -1) {
        const whole = parseOr(body.slice(start, i + 1)) as { name?: unknown; arguments?: unknown };
        if (typeof whole?.name !== "string") return calls.length > 0 ? calls : undefined;
        calls.push(call(whole.name, JSON.stringify(whole.arguments ?? {})));
        start = -1;
      }
    }
  }
  if (start === -1) return calls.length > 0 ? calls : undefined;
  const partial = /^\{\s*"name"\s*:\s*("(?:[^"\\]|\\.)*")\s*(?:,\s*"arguments"\s*:\s*([\s\S]*))?/.exec(body.slice(start));
  if (partial) calls.push(call(JSON.parse(partial[1]!) as string, partial[2] ?? ""));
  return calls.length > 0 ? calls : undefined;
}

function defaultCallId(): string {
  return `call_${randomBytes(12).toString("base64url")}`;
}

function parseOr(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}
