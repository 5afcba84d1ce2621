import type { ToolCallPiece } from "../http/assemble-stream.js";

/**
 * Ollama's `message.tool_calls` (`[{function: {name, arguments: {…}}}]`) as pieces numbered from `first`. With
 * parallel calls off (`parallel_tool_calls: false`, which Ollama cannot be told) only the answer's first call is kept.
 */
export function toolCallPieces(raw: unknown, first: number, parallel: boolean): ToolCallPiece[] {
  if (!Array.isArray(raw)) return [];
  const pieces: ToolCallPiece[] = [];
  for (const [i, c] of raw.entries()) {
    const fn = (c as { function?: { name?: unknown; arguments?: unknown } })?.function;
    if (typeof fn?.name !== "string") continue;
    if (!parallel && first + i > 0) break;
    const args = fn.arguments;
    pieces.push({ index: first + i, name: fn.name, arguments: typeof args === "string" ? args : JSON.stringify(args ?? {}) });
  }
  return pieces;
}
