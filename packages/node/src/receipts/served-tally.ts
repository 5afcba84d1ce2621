import type { StreamPart } from "@tessera/protocol";

/**
 * Counts the output tokens of one turn at a job the way the coordinator credits them (the coordinator's
 * jobs/honest-usage.ts and job-manager.ts), so the node can compare a receipt's `output_tokens` with what it streamed:
 * - text deltas with token ids count their ids, once some text has arrived for them (ids of a delta without text
 *   wait for the next text: a character split across tokens);
 * - a text delta without ids counts one, and the count is no longer exact;
 * - tool calls count their ids, or one per call;
 * - when the count is not exact, the node's own usage figure (which the coordinator accepts within bounds) is it.
 */
export class ServedTally {
  private relayed = 0;
  private pending = 0;
  private exact = true;
  private claimed: number | undefined;

  observe(part: StreamPart): void {
    switch (part.type) {
      case "text-delta":
        if (part.text.length === 0 && !part.tokens?.length) return;
        if (part.tokens) this.pending += part.tokens.length;
        if (part.text.length === 0) return;
        if (!part.tokens) this.exact = false;
        this.relayed += part.tokens ? this.pending : 1;
        this.pending = 0;
        return;
      case "tool-calls":
        if (!part.tokens) this.exact = false;
        this.relayed += part.tokens?.length ?? part.calls.length;
        return;
      case "usage":
        this.claimed = part.completion_tokens;
        return;
      default:
        return;
    }
  }

  get outputTokens(): number {
    return this.exact || this.claimed === undefined ? this.relayed : Math.max(this.claimed, this.relayed);
  }
}
