import type OpenAI from "openai";
import type { ManagedProcess } from "./managed-process.js";
import { type GreedyChatRequest, streamGreedyChat } from "./stream-greedy-chat.js";

/** Where the stream goes (a coordinator, or the replica a client uses) and the daemons that may serve it. */
export interface StreamTarget<N extends { id: string; process: ManagedProcess }> {
  url: string;
  nodes: Iterable<N>;
}

export interface KillMidStreamResult<N = { id: string; process: ManagedProcess }> {
  text: string;
  /** Content chunks the client received. */
  chunks: number;
  /** The node that was serving the stream and got the signal. */
  killed: N;
  /** The node the coordinator reports as having finished the job. */
  finishedBy: string | undefined;
  /** Milliseconds from the signal to the next text the client received (NaN if none came after it). */
  resumeMs: number;
  usage: OpenAI.CompletionUsage | undefined;
}

/**
 * Streams a greedy chat completion through the cluster with the official openai client and, when the client has
 * received `killAtChunk` content chunks, signals the daemon serving it (SIGKILL: it dies and its session drops;
 * SIGSTOP: it freezes with its session open, a node that has the job and says nothing); then reads the stream to the end.
 */
export async function killMidStream<N extends { id: string; process: ManagedProcess }>(
  cluster: StreamTarget<N>,
  request: GreedyChatRequest,
  killAtChunk: number,
  signal: "SIGKILL" | "SIGSTOP" = "SIGKILL",
): Promise<KillMidStreamResult<N>> {
  let killed: N | undefined;
  let killedAt = 0;
  let resumeMs = NaN;
  const { text, chunks, jobId, usage } = await streamGreedyChat(cluster.url, request, async (count, jobId) => {
    if (killed && Number.isNaN(resumeMs)) resumeMs = performance.now() - killedAt;
    if (count !== killAtChunk || killed) return;
    const job = (await (await fetch(`${cluster.url}/api/v1/jobs/${jobId}`)).json()) as { node_id?: string };
    killed = [...cluster.nodes].find((n) => n.id === job.node_id);
    if (!killed) throw new Error(`job ${jobId} reports node ${job.node_id}, not one of the cluster's`);
    killedAt = performance.now();
    killed.process.kill(signal);
  });
  if (!killed) throw new Error(`the stream ended after ${chunks} chunks, before chunk ${killAtChunk}`);
  const job = (await (await fetch(`${cluster.url}/api/v1/jobs/${jobId}`)).json()) as { node_id?: string };
  return { text, chunks, killed, finishedBy: job.node_id, resumeMs, usage };
}
