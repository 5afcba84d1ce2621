import { type ChatMessage, TesseraError } from "@tessera/protocol";
import type { GenerateRequest } from "../backends/adapter.js";
import { hasToolTurns } from "../prompt/index.js";
import { type OutputGrammar, TEXT_BRANCH_REST_GRAMMAR, outputGrammar } from "./output-grammar.js";
import { toolPromptMessages } from "./tool-prompt.js";

/** Where a backend adapter tells the operator what they should know (a server that refuses Tessera's grammar, once). */
export type BackendLog = (level: "info" | "warn", message: string) => void;

/** A chat written Tessera's one way (design.md beside this file): ordinary messages, and what its answer runs under. */
export interface CanonicalChat {
  /** The messages with the callable tools written into a system instruction and tool turns as ordinary turns. */
  messages: ChatMessage[];
  output: OutputGrammar;
}

/**
 * `request`'s chat the one way; a `response_format` / tools combination no grammar can enforce is `bad_request`.
 * Used by the backends that run it on token ids through a server (llama-server, vLLM, SGLang); the embedded engine
 * builds the same two things with its compiled grammar.
 */
export async function canonicalChat(kind: string, request: Pick<GenerateRequest, "messages" | "sampling">): Promise<CanonicalChat> {
  const planned = await outputGrammar(request.sampling);
  if (!planned.ok) throw new TesseraError("bad_request", `${kind}: ${planned.message}`);
  const output = planned.grammar;
  const tools = output.kind === "tools" ? output.tools : [];
  return { messages: toolPromptMessages(request.messages, tools, output.kind === "tools" && output.required), output };
}

/**
 * What a constrained answer runs under on a server that cannot advance a grammar over the prefix tokens it is given
 * (llama-server, vLLM, SGLang), and whether it continues another node's answer:
 * - the whole grammar when there is no prefix;
 * - the rest of the text branch of `tool_choice: auto` (`TEXT_BRANCH_REST_GRAMMAR`) for a prefix that began a text
 *   answer;
 * - anything else (a prefix in a call or a JSON answer) is declined with `unsupported_parameter`, so the coordinator
 *   moves the job to a node that can continue it (the embedded engine).
 * `logprobs` is declined too, as on the embedded engine, whose grammars run where log-probabilities are not read.
 */
export function serverGrammar(
  kind: string,
  output: Exclude<OutputGrammar, { kind: "free" }>,
  request: { logprobs: boolean | undefined; prefixText: string; prefixTokens: number },
): { grammar: string; continuation: boolean } {
  if (request.logprobs) {
    throw new TesseraError("unsupported_parameter", `${kind}: logprobs cannot be returned for an answer constrained by response_format or tools`, { param: "logprobs" });
  }
  const continuation = request.prefixText !== "" || request.prefixTokens > 0;
  if (!continuation) return { grammar: output.text, continuation };
  if (output.kind === "json" || output.required || request.prefixText === "" || request.prefixText.startsWith("<")) {
    const what = output.kind === "json" ? "a response_format answer" : "a tool call";
    throw new TesseraError(
      "unsupported_parameter",
      `${kind}: cannot continue ${what} another node began: ${kind} cannot advance a grammar over the answer so far (a node running the embedded engine can)`,
      { param: output.kind === "json" ? "response_format" : "tools" },
    );
  }
  return { grammar: TEXT_BRANCH_REST_GRAMMAR, continuation };
}

/** Whether a job runs the one way here: a chat (not a raw prompt) with tools, tool turns or `response_format`. */
export function isConstrainedChat(request: Pick<GenerateRequest, "messages" | "sampling" | "rawPrompt">): boolean {
  const { sampling } = request;
  return !request.rawPrompt && (Boolean(sampling.tools?.length) || hasToolTurns(request.messages) || sampling.response_format !== undefined);
}
