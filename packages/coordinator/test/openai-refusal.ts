import OpenAI from "openai";

/** The error the official `openai` client throws for a call the coordinator refuses; fails when the call succeeds. */
export async function refusal(call: () => Promise<unknown>): Promise<InstanceType<typeof OpenAI.APIError>> {
  try {
    await call();
  } catch (err) {
    if (err instanceof OpenAI.APIError) return err;
    throw err;
  }
  throw new Error("the call was not refused");
}
