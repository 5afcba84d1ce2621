import { z } from "zod";

/** A chat message as both APIs accept it. OpenAI's array-of-text-parts content is accepted and joined. */
const TextPart = z.object({ type: z.literal("text"), text: z.string() });

export const ChatMessageInput = z.object({
  role: z.enum(["system", "user", "assistant", "developer"]),
  content: z.union([z.string(), z.array(TextPart).min(1)]),
  name: z.string().max(64).optional(),
});

export const ChatMessage = z.object({
  role: z.enum(["system", "user", "assistant"]),
  content: z.string(),
});
export type ChatMessage = z.infer<typeof ChatMessage>;

export const ChatMessages = z.array(ChatMessageInput).min(1).max(1024).transform((messages): ChatMessage[] =>
  messages.map((m) => ({
    role: m.role === "developer" ? "system" : m.role,
    content: typeof m.content === "string" ? m.content : m.content.map((p) => p.text).join(""),
  })),
);
