/**
 * For ggml-worker-span.test.ts: a process that loads a ggml span in its worker, computes one step, then closes the
 * span (`close`) or leaves it open (`open`), and must then exit by itself (no thread keeps it alive).
 * Usage: node --conditions=tessera-source --import tsx ggml-worker-exit.fixture.ts <model.gguf> close|open
 */
import { GgmlWorkerSpan } from "./ggml-worker-span.js";

const [path, mode] = process.argv.slice(2);
const span = await GgmlWorkerSpan.load({ path: path!, start: 0, end: 1 });
await span.forward("r", [1, 2, 3], [0, 1, 2]);
if (mode === "close") await span.close();
console.log(`computed ${mode}`);
