import { type StreamPart, type ToolCall, TesseraError } from "@tessera/protocol";
import type { BackendAdapter, GenerateRequest } from "../adapter.js";
import { errorPart } from "../http/backend-error.js";
import { withGeneration } from "../generation-wrapper.js";

/**
 * `adapter` (llama-server's, or llama-swap's) holding llama-server to a forced tool call. llama-server takes tools
 * only when started with `--jinja` and only where llama.cpp recognises the model's chat template as one that calls
 * tools; otherwise it answers in prose and says nothing (seen on the real server: `tool_choice: "required"` with a
 * ChatML template answered 60 tokens of text, finish `length`). So when the job forces a call (`required`, or a named
 * function), the answer is held until it ends and passed on only if it holds the call asked for; otherwise the job
 * gets `unsupported_parameter` naming `tool_choice` and no text, and the coordinator moves it to another node. Other
 * jobs stream as they come. A forced call is delivered whole anyway (one tool-calls part), so holding costs nothing.
 */
export function withForcedToolCalls(adapter: BackendAdapter): BackendAdapter {
  return withGeneration(adapter, {
    async doGenerate(request) {
      const forced = forcedCall(request);
      const result = await adapter.doGenerate(request);
      if (forced && !honours(forced, result.toolCalls)) throw refusal(adapter.kind, forced);
      return result;
    },
    async *doStream(request): AsyncGenerator<StreamPart> {
      const forced = forcedCall(request);
      if (!forced) {
        yield* adapter.doStream(request);
        return;
      }
      const held: StreamPart[] = [];
      for await (const part of adapter.doStream(request)) {
        held.push(part);
        // An error or a cancelled answer ends as the backend ended it: there is nothing to hold it to.
        if (part.type === "error" || (part.type === "finish" && part.reason === "cancelled")) {
          yield* held;
          return;
        }
      }
      const calls = held.find((p): p is Extract<StreamPart, { type: "tool-calls" }> => p.type === "tool-calls")?.calls;
      if (honours(forced, calls)) yield* held;
      else yield errorPart(refusal(adapter.kind, forced));
    },
  });
}

/** The call a job forces: any function (`required`), one by name, or none. */
function forcedCall(request: GenerateRequest): { name?: string } | undefined {
  const choice = request.sampling.tool_choice;
  if (!request.sampling.tools?.length || choice === undefined || choice === "auto" || choice === "none") return undefined;
  return choice === "required" ? {} : { name: choice.function.name };
}

function honours(forced: { name?: string }, calls: readonly ToolCall[] | undefined): boolean {
  return (calls?.length ?? 0) > 0 && (forced.name === undefined || calls!.every((c) => c.function.name === forced.name));
}

function refusal(kind: string, forced: { name?: string }): TesseraError {
  const asked = forced.name === undefined ? "a tool call (tool_choice required)" : `a call of ${forced.name}`;
  return new TesseraError(
    "unsupported_parameter",
    `${kind}: the server answered without ${asked}; it calls tools only when started with --jinja and a chat template llama.cpp recognises for tool calls`,
    { param: "tool_choice" },
  );
}
