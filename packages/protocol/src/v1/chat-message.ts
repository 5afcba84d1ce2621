import { z } from "zod";
import { ToolCall } from "./tools.js";

/** A chat message as both APIs accept it. OpenAI's array-of-text-parts content is accepted and joined. */
const TextPart = z.object({ type: z.literal("text"), text: z.string() });
const Content = z.union([z.string(), z.array(TextPart).min(1)], { error: "content must be a string or a non-empty list of text parts" });
const Name = z.string().max(64).optional();

const ToolCalls = z.array(ToolCall).min(1).max(128);

/**
 * OpenAI's message kinds: an assistant turn that called tools has `content: null` (or text) and `tool_calls`; each
 * call's result comes back as a `tool` message naming the call it answers.
 */
export const ChatMessageInput = z.discriminatedUnion("role", [
  z.object({ role: z.literal("system"), content: Content, name: Name }),
  z.object({ role: z.literal("developer"), content: Content, name: Name }),
  z.object({ role: z.literal("user"), content: Content, name: Name }),
  z
    .object({ role: z.literal("assistant"), content: Content.nullish(), name: Name, tool_calls: ToolCalls.nullish(), refusal: z.string().nullish() })
    .refine((m) => m.content != null || (m.tool_calls?.length ?? 0) > 0, { message: "an assistant message needs content or tool_calls", path: ["content"] }),
  z.object({ role: z.literal("tool"), content: Content, tool_call_id: z.string().min(1).max(256) }),
]);

/** A message as a job carries it: text content always (empty for an assistant turn that only called tools). */
export const ChatMessage = z.object({
  role: z.enum(["system", "user", "assistant", "tool"]),
  content: z.string(),
  /** On an assistant message: the calls it made. */
  tool_calls: ToolCalls.optional(),
  /** On a tool message: the call whose result this is. */
  tool_call_id: z.string().min(1).max(256).optional(),
});
export type ChatMessage = z.infer<typeof ChatMessage>;

const text = (content: z.infer<typeof Content> | null | undefined): string =>
  content == null ? "" : typeof content === "string" ? content : content.map((p) => p.text).join("");

export const ChatMessages = z.array(ChatMessageInput).min(1).max(1024).transform((messages): ChatMessage[] =>
  messages.map((m): ChatMessage => {
    switch (m.role) {
      case "assistant":
        return m.tool_calls ? { role: "assistant", content: text(m.content), tool_calls: m.tool_calls } : { role: "assistant", content: text(m.content) };
      case "tool":
        return { role: "tool", content: text(m.content), tool_call_id: m.tool_call_id };
      case "developer":
        return { role: "system", content: text(m.content) };
      default:
        return { role: m.role, content: text(m.content) };
    }
  }),
);
