import { open } from "node:fs/promises";
import { TesseraError } from "@tessera/protocol";

/** Every GGUF file starts with these four bytes (then a little-endian version); anything else is refused. */
export const GGUF_MAGIC = Buffer.from("GGUF", "ascii");

export function checkGgufHead(head: Buffer, what: string): void {
  if (head.length >= 4 && head.subarray(0, 4).equals(GGUF_MAGIC)) return;
  const shown = /^[\x20-\x7e]*$/.test(head.toString("latin1")) ? JSON.stringify(head.toString("latin1")) : `0x${head.toString("hex")}`;
  const hint = /^(<|\{|\s)/.test(head.toString("latin1")) ? " (an HTML or JSON page: is the URL a download link?)" : "";
  throw new TesseraError("bad_request", `${what} is not a GGUF file: it starts with ${shown}, not "GGUF"${hint}; removed, not installed`);
}

export async function readHead(path: string, bytes = 4): Promise<Buffer> {
  const file = await open(path, "r");
  try {
    const buffer = Buffer.alloc(bytes);
    const { bytesRead } = await file.read(buffer, 0, bytes, 0);
    return buffer.subarray(0, bytesRead);
  } finally {
    await file.close();
  }
}
