import type { StreamPart } from "@tessera/protocol";
import type { Token } from "node-llama-cpp";
import type { OutputKind } from "./output-grammar.js";
import { TOOL_CALL_MARKER } from "./output-grammar.js";
import { parsePartialToolCalls, parseToolCalls } from "./tool-prompt.js";

/**
 * node-llama-cpp 3.22's JSON-schema grammars end with `"\n\n\n\n" [\n]*` and expect the caller to stop at those four
 * newlines (its LlamaChat does, as a stop trigger) and trim them. JSON text never holds four newlines in a row (a
 * string cannot hold a raw newline; the grammar's whitespace is one newline and indentation), so the first run of
 * them is the end of the answer.
 */
export const GRAMMAR_END = "\n\n\n\n";

/**
 * One step of an answer: its text and the ids of the tokens behind it. `tokens` is absent where a backend cannot say
 * them exactly (llama-server streams no id for a token whose text ends mid-character); the parts it goes into then
 * carry no ids, so nobody relays a wrong list.
 */
interface Delta {
  text: string;
  tokens?: Token[];
}

/**
 * Turns the token deltas of a grammar-constrained answer into stream parts:
 * - JSON answers stream as they come, except a trailing run of newlines, held until text follows it or it becomes
 *   the grammar's end (then dropped, and generation stops);
 * - a tool-call answer (it starts with `<`) is held whole and sent as one tool-calls part at the end; calls cut short
 *   (max_tokens, cancel) go out as the calls written so far, the last one's arguments cut, as OpenAI answers them
 *   with `finish_reason: "length"`; the call syntax itself is never sent as text;
 * - free answers, and the text branch of `tool_choice: auto`, stream untouched.
 * The tokens of dropped text ride on the last part sent, so the relayed token count equals the generated one.
 * Each part carries the ids of all the deltas it holds, or none when one of them came without.
 */
export class ConstrainedAnswer {
  private mode: "undecided" | "text" | "call";
  private readonly endsWithMarker: boolean;
  private held: Delta = { text: "", tokens: [] };
  /** Whether anything (text or a token) is held since the last part went out. */
  private holding = false;

  constructor(plan: OutputKind, continuation: boolean) {
    this.mode = plan === "tools" && !continuation ? "undecided" : "text";
    this.endsWithMarker = plan === "json";
  }

  /** The parts to send for one delta, and whether the grammar has ended (generation must stop, finish "stop"). */
  push(delta: Delta): { parts: StreamPart[]; ended: boolean } {
    if (this.mode === "undecided") this.mode = delta.text.startsWith("<") ? "call" : "text";
    this.held = { text: this.held.text + delta.text, ...(this.held.tokens && delta.tokens ? { tokens: [...this.held.tokens, ...delta.tokens] } : {}) };
    this.holding = true;
    if (this.mode === "call") return { parts: [], ended: this.held.text.indexOf(GRAMMAR_END, TOOL_CALL_MARKER.length) !== -1 };
    if (!this.endsWithMarker) return { parts: this.release(this.held.text), ended: false };
    const end = this.held.text.indexOf(GRAMMAR_END);
    if (end !== -1) return { parts: this.release(this.held.text.slice(0, end).trimEnd()), ended: true };
    return { parts: this.held.text.endsWith("\n") ? [] : this.release(this.held.text), ended: false };
  }

  /** What is still held when generation ends: `completed` when it ended by itself (EOG or the grammar's end). */
  finish(completed: boolean): StreamPart[] {
    if (this.mode !== "call") return this.holding ? this.release(this.held.text) : [];
    const end = this.held.text.indexOf(GRAMMAR_END, TOOL_CALL_MARKER.length);
    const text = end === -1 ? this.held.text : this.held.text.slice(0, end);
    const calls = completed ? parseToolCalls(text.trimEnd()) : parsePartialToolCalls(text);
    const ids = this.takeIds();
    if (calls) return [{ type: "tool-calls", calls, ...ids }];
    if (!completed) return ids.tokens?.length ? [{ type: "text-delta", text: "", ...ids }] : []; // cut before a name: no call to show
    return text ? [{ type: "text-delta", text, ...ids }] : [];
  }

  private release(text: string): StreamPart[] {
    const ids = this.takeIds();
    return text || ids.tokens?.length ? [{ type: "text-delta", text, ...ids }] : [];
  }

  /** The held ids (none where one delta came without), and nothing held any more. */
  private takeIds(): { tokens?: Token[] } {
    const { tokens } = this.held;
    this.held = { text: "", tokens: [] };
    this.holding = false;
    return tokens ? { tokens } : {};
  }
}
