import { TesseraError, callableTools } from "@tessera/protocol";
import type { GenerateRequest } from "../adapter.js";

/**
 * HTTP servers start a response_format or tool grammar at the start of the answer, not after an assistant prefix, so
 * continuing a constrained answer another node began (failover) would write a second JSON document after the first
 * half. Such a continuation is refused (`bad_request`), which the coordinator reports as an answer no node could
 * continue, rather than corrupted. The embedded engine advances its grammar over the prefix instead.
 */
export function constrainedContinuationError(kind: string, request: GenerateRequest): TesseraError | undefined {
  if (!request.assistantPrefix) return undefined;
  const { sampling } = request;
  const constrained = sampling.response_format ? "response_format" : callableTools(sampling.tools, sampling.tool_choice).tools.length > 0 ? "tools" : undefined;
  if (!constrained) return undefined;
  return new TesseraError("bad_request", `${kind}: cannot continue an answer constrained by ${constrained} from another node's prefix`);
}
