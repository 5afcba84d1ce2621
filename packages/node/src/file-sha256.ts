import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";

/** A model file's identity: its SHA-256, streamed in 4 MiB reads (a few hundred MB a second). */
export async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path, { highWaterMark: 4 << 20 })) hash.update(chunk as Buffer);
  return hash.digest("hex");
}
