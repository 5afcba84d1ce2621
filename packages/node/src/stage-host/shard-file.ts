/** What a node offers for one local GGUF file: its identity (SHA-256), layer count and per-layer bytes in the file. */
import { basename } from "node:path";
import { TesseraError, modelIdFromFileName } from "@tessera/protocol";
import { ggmlTypeName, isSupportedType, openGguf, SUPPORTED_TYPE_NAMES } from "../stage/gguf-reader.js";
import { readLlamaConfig } from "../stage/llama-config.js";
import { sha256File } from "../file-sha256.js";

export interface ShardFile {
  path: string;
  /** The model id users ask for: the file's stem, as the embedded backend names it. */
  model: string;
  sha256: string;
  layerCount: number;
  /**
   * The largest layer's tensors as stored in the file: a property of the file that every honest offer of it states
   * alike, and the least any backend holds a layer in (what a layer takes on this node's backend is
   * span-cost.ts's spanBytesPerLayer).
   */
  bytesPerLayer: number;
}

export async function describeShardFile(path: string): Promise<ShardFile> {
  const file = openGguf(path);
  let layerCount: number;
  let bytesPerLayer = 0;
  try {
    layerCount = readLlamaConfig(file).nLayer;
    const unsupported = [...file.tensors.values()].filter((t) => !isSupportedType(t.type));
    if (unsupported.length > 0) {
      const types = [...new Set(unsupported.map((t) => ggmlTypeName(t.type)))].join(", ");
      throw new TesseraError(
        "bad_request",
        `${path}: ${unsupported.length} tensor(s) are ${types} (first: ${unsupported[0]!.name}), which the stage runtime cannot run; ` +
          `it runs ${SUPPORTED_TYPE_NAMES.join(", ")} (Q4_K_M and Q8_0 files): re-quantise the file to one of those`,
      );
    }
    const perLayer = new Array<number>(layerCount).fill(0);
    for (const t of file.tensors.values()) {
      const m = /^blk\.(\d+)\./.exec(t.name);
      if (m) perLayer[Number(m[1])] = (perLayer[Number(m[1])] ?? 0) + t.byteLength;
    }
    bytesPerLayer = Math.max(1, ...perLayer);
  } finally {
    file.close();
  }
  return { path, model: modelIdFromFileName(basename(path).replace(/\.gguf$/i, "")), sha256: await sha256File(path), layerCount, bytesPerLayer };
}
