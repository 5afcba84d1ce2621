/**
 * How the fakes "decide" on tools, the same for every wire format: with `tool_choice` naming a function they call
 * it; with tools offered and `tool_choice` not `none` they call the first tool; otherwise they answer in text. The
 * arguments are the behaviour's `toolArguments`. And what servers check of a history: every `tool` message answers a
 * call an earlier assistant message made (OpenAI, vLLM and SGLang answer 400 otherwise).
 */
export interface ToolRequest {
  tools?: { type?: string; function?: { name?: string } }[] | null;
  tool_choice?: unknown;
}

export function plannedToolCall(body: ToolRequest): string | undefined {
  const tools = body.tools ?? [];
  if (tools.length === 0 || body.tool_choice === "none") return undefined;
  const named = (body.tool_choice as { function?: { name?: unknown } } | undefined)?.function?.name;
  if (typeof named === "string") return named;
  return tools[0]?.function?.name;
}

/** The first tool message that answers no earlier call, as an error message; undefined when the history is sound. */
export function unansweredToolMessage(messages: { role: string; tool_call_id?: unknown; tool_calls?: { id?: unknown }[] | null }[]): string | undefined {
  const calls = new Set<unknown>();
  for (const [i, m] of messages.entries()) {
    for (const c of m.tool_calls ?? []) calls.add(c.id);
    if (m.role === "tool" && !calls.has(m.tool_call_id)) return `messages.${i}: tool message answers no earlier tool call (${String(m.tool_call_id)})`;
  }
  return undefined;
}
