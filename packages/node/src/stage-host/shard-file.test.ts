import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TesseraError } from "@tessera/protocol";
import { makeTinyModel, type TinyModelInfo } from "@tessera/testkit";
import { openGguf } from "../stage/gguf-reader.js";
import { residentBytes } from "../stage/weights.js";
import { describeShardFile } from "./shard-file.js";

let dir: string;
let model: TinyModelInfo;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "shard-file-"));
  model = await makeTinyModel({ path: join(dir, "k.gguf"), weightType: "q4_k_m", vocab: "bytes", blockCount: 3, embeddingLength: 256, feedForwardLength: 512 });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A copy of the model with the type id of tensor `name` in its header replaced by `type`. */
function withTensorType(name: string, type: number): string {
  const bytes = readFileSync(model.path);
  const at = bytes.indexOf(Buffer.from(name)) + name.length; // the name is followed by n_dims, the dims, the type
  const nDims = bytes.readUInt32LE(at);
  bytes.writeUInt32LE(type, at + 4 + 8 * nDims);
  const path = join(dir, `type-${type}.gguf`);
  writeFileSync(path, bytes);
  return path;
}

describe("describeShardFile", () => {
  it("offers the model's identity, layer count and the largest layer's bytes in the file", async () => {
    const shard = await describeShardFile(model.path);
    expect(shard).toMatchObject({ model: "k", sha256: model.sha256, layerCount: 3 });
    const file = openGguf(model.path);
    const perLayer = [0, 1, 2].map((l) => [...file.tensors.values()].filter((t) => t.name.startsWith(`blk.${l}.`)).reduce((a, t) => a + t.byteLength, 0));
    const resident = [...file.tensors.values()].filter((t) => t.name.startsWith("blk.0.")).reduce((a, t) => a + residentBytes(t), 0);
    file.close();
    expect(shard.bytesPerLayer).toBe(Math.max(...perLayer));
    // A property of the file, not of a runtime: the WebAssembly runtime unpacks layer 0's Q6_K tensors to more.
    expect(resident).toBeGreaterThan(perLayer[0]!);
  });

  it("refuses, at daemon start, a file with tensors the runtime cannot run, naming the type", async () => {
    const path = withTensorType("blk.1.ffn_up.weight", 13);
    const err = await describeShardFile(path).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TesseraError);
    expect((err as TesseraError).code).toBe("bad_request");
    expect((err as Error).message).toMatch(/Q5_K \(first: blk\.1\.ffn_up\.weight\).*re-quantise/);
  });
});
