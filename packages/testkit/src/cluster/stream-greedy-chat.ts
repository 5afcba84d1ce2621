import OpenAI from "openai";

export interface GreedyChatRequest {
  model: string;
  /** Plain turns, or any OpenAI turn (earlier tool calls and their results) for tool chats. */
  messages: OpenAI.ChatCompletionMessageParam[];
  maxTokens: number;
  /** Tools offered, and how they may be called (a tool chat; its text answer is what streams). */
  tools?: OpenAI.ChatCompletionTool[];
  toolChoice?: OpenAI.ChatCompletionToolChoiceOption;
}

export interface GreedyChatStream {
  text: string;
  /** Content chunks the client received. */
  chunks: number;
  /** The job's id, from the chunks' `chatcmpl-<job id>`. */
  jobId: string | undefined;
  usage: OpenAI.CompletionUsage | undefined;
}

/**
 * Streams a greedy chat completion from `baseUrl` (a coordinator or a replica) with the official openai client, usage
 * included, and reads it to the end. `onChunk` runs after each content chunk with the count so far and the job id
 * (awaited: a test may look the job up, or kill a process, before reading on).
 */
export async function streamGreedyChat(
  baseUrl: string,
  request: GreedyChatRequest,
  onChunk?: (chunks: number, jobId: string | undefined) => void | Promise<void>,
): Promise<GreedyChatStream> {
  const client = new OpenAI({ baseURL: `${baseUrl}/v1`, apiKey: "open-mode", maxRetries: 0 });
  const stream = await client.chat.completions.create({
    model: request.model,
    messages: request.messages,
    max_tokens: request.maxTokens,
    ...(request.tools ? { tools: request.tools } : {}),
    ...(request.toolChoice ? { tool_choice: request.toolChoice } : {}),
    temperature: 0,
    stream: true,
    stream_options: { include_usage: true },
  });
  const out: GreedyChatStream = { text: "", chunks: 0, jobId: undefined, usage: undefined };
  for await (const chunk of stream) {
    out.jobId ??= chunk.id.replace(/^chatcmpl-/, "");
    if (chunk.usage) out.usage = chunk.usage;
    const delta = chunk.choices[0]?.delta.content;
    if (!delta) continue;
    out.text += delta;
    out.chunks++;
    await onChunk?.(out.chunks, out.jobId);
  }
  return out;
}
