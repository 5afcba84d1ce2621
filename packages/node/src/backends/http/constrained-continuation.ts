import { TesseraError, callableTools } from "@tessera/protocol";
import type { GenerateRequest } from "../adapter.js";
import { hasToolTurns } from "../../prompt/index.js";

/**
 * On a backend's native route (its own tool template and grammar: Ollama, MAX, llama-swap, and vLLM or SGLang when
 * they cannot run the one grammar), the server starts a response_format or tool grammar at the start of the answer,
 * not after an assistant prefix, so continuing a constrained answer another node began (failover) would write a
 * second JSON document after the first half. Such a continuation is declined (`unsupported_parameter`): the
 * coordinator then moves the job to a node that can continue it (the embedded engine advances its grammar over the
 * prefix), and tells the client only when none can.
 */
export function constrainedContinuationError(kind: string, request: GenerateRequest): TesseraError | undefined {
  if (!request.assistantPrefix) return undefined;
  const { sampling } = request;
  const constrained = sampling.response_format ? "response_format" : callableTools(sampling.tools, sampling.tool_choice).tools.length > 0 ? "tools" : undefined;
  if (!constrained) return undefined;
  return new TesseraError("unsupported_parameter", `${kind}: cannot continue an answer constrained by ${constrained} from another node's prefix`, { param: constrained });
}

/**
 * Prompt ids (a continuation of a job another node began: `job.assign` `prompt_tokens`) on a chat with tools, tool
 * turns or `response_format`, on a backend that does not render those canonically (vLLM, SGLang, Ollama, MAX,
 * llama-swap: their servers write tools and JSON mode their own way). The ids were rendered Tessera's way
 * (constrained/tool-prompt.ts) and must run under Tessera's grammar, which these servers cannot take, so the job is
 * declined (`unsupported_parameter`: the coordinator moves it to a node that can, such as the embedded engine or
 * llama-server), never run as another prompt and never failed.
 */
export function promptTokensWithToolsRefusal(kind: string, request: GenerateRequest): TesseraError | undefined {
  if (request.promptTokens === undefined) return undefined;
  const { sampling } = request;
  const what = sampling.tools?.length ? "tools" : hasToolTurns(request.messages) ? "tool calls or results in the chat" : sampling.response_format ? "response_format" : undefined;
  if (!what) return undefined;
  return new TesseraError(
    "unsupported_parameter",
    `${kind}: cannot run this job's canonical prompt (prompt_tokens) with ${what}: its tools and JSON mode are written Tessera's way, which this backend does not run`,
    { param: "prompt_tokens" },
  );
}
