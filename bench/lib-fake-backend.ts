/**
 * An OpenAI-compatible fake backend (vLLM's wire format) in a process of its own, as every real backend is: a
 * benchmark that compares a direct client with Tessera runs it here so the direct path crosses a process boundary
 * too, instead of the client calling a server in its own event loop. Prints `ready <url>` once it listens; stops on
 * SIGTERM.
 *
 *   node --conditions=tessera-source --import tsx bench/lib-fake-backend.ts --model bench-model --rate 100 --tokens 256
 */
import { parseArgs } from "node:util";
import { startFakeOpenAICompatible } from "@tessera/testkit";

const { values } = parseArgs({ options: { model: { type: "string" }, rate: { type: "string" }, tokens: { type: "string" } } });
const tokens = Number(values.tokens);
const rate = Number(values.rate);
if (!values.model || !(Number.isInteger(tokens) && tokens > 0) || !(rate >= 0)) {
  process.stderr.write("usage: lib-fake-backend.ts --model NAME --rate TOKENS_PER_SECOND --tokens N (N a positive integer)\n");
  process.exit(2);
}
const reply = Array.from({ length: tokens * 2 }, (_, i) => `w${i}`).join(" ");
const fake = await startFakeOpenAICompatible({ flavour: "vllm", models: [values.model], behaviour: { tokensPerSecond: rate, reply } });
process.stdout.write(`ready ${fake.url}\n`);
process.on("SIGTERM", () => void fake.http.close().then(() => process.exit(0)));
