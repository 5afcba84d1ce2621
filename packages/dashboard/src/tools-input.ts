import type { ToolDefinition } from "@tessera/protocol";

/**
 * The playground's tools box: a JSON array of OpenAI function tools, checked in the page before anything is sent
 * (the coordinator checks it again and names what it refuses). Empty text: no tools.
 */
export type ToolsInput = { ok: true; tools: ToolDefinition[] } | { ok: false; error: string };

const NAME = /^[A-Za-z0-9_-]{1,64}$/;

export function parseToolsInput(text: string): ToolsInput {
  if (text.trim() === "") return { ok: true, tools: [] };
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return { ok: false, error: `Tools must be JSON: ${(err as Error).message}` };
  }
  if (!Array.isArray(value)) return { ok: false, error: 'Tools must be a JSON array: [{"type": "function", "function": {"name": …, "parameters": {…}}}]' };
  for (const [i, tool] of value.entries()) {
    const t = tool as { type?: unknown; function?: { name?: unknown; parameters?: unknown } } | null;
    const where = `tool ${i + 1}`;
    if (typeof t !== "object" || t === null || Array.isArray(t)) return { ok: false, error: `${where} must be an object` };
    if (t.type !== "function") return { ok: false, error: `${where}: "type" must be "function"` };
    if (typeof t.function !== "object" || t.function === null) return { ok: false, error: `${where}: "function" must be an object with a "name"` };
    if (typeof t.function.name !== "string" || !NAME.test(t.function.name)) return { ok: false, error: `${where}: "function.name" must be 1-64 letters, digits, "_" or "-"` };
    const params = t.function.parameters;
    if (params !== undefined && (typeof params !== "object" || params === null || Array.isArray(params))) return { ok: false, error: `${where}: "function.parameters" must be a JSON Schema object` };
  }
  return { ok: true, tools: value as ToolDefinition[] };
}

/** An example the page offers to start from. */
export const EXAMPLE_TOOLS = JSON.stringify(
  [
    {
      type: "function",
      function: {
        name: "get_weather",
        description: "The weather in a city now",
        parameters: { type: "object", properties: { city: { type: "string", enum: ["Paris", "Lagos", "Lima"] } }, required: ["city"], additionalProperties: false },
      },
    },
  ],
  null,
  2,
);
