import type { StreamPart } from "@tessera/protocol";

/** Readers of a backend's stream parts, for the tests that compare two backends' answers part by part. */
export async function collect(parts: AsyncIterable<StreamPart>): Promise<StreamPart[]> {
  const out: StreamPart[] = [];
  for await (const p of parts) out.push(p);
  return out;
}
type Delta = Extract<StreamPart, { type: "text-delta" }>;
export const deltas = (parts: StreamPart[]) => parts.filter((p): p is Delta => p.type === "text-delta");
/** Every token the answer relayed, text deltas and the tool-calls part alike. */
export const tokensOf = (parts: StreamPart[]) => parts.flatMap((p) => (p.type === "text-delta" || p.type === "tool-calls" ? (p.tokens ?? []) : []));
export const textOf = (parts: StreamPart[]) => deltas(parts).map((d) => d.text).join("");
export const promptOf = (parts: StreamPart[]) => parts.find((p): p is Extract<StreamPart, { type: "prompt" }> => p.type === "prompt")?.tokens;
/** The calls without their ids (each backend makes its own, as OpenAI's do). */
export const callsOf = (parts: StreamPart[]) => parts.flatMap((p) => (p.type === "tool-calls" ? p.calls.map((c) => c.function) : []));
export const tail = (parts: StreamPart[]) => parts.filter((p) => p.type === "usage" || p.type === "finish");
