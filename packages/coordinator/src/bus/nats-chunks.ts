/**
 * A bus message larger than the NATS server's max_payload, as chunks the server takes, and put back together at the
 * subscription (design.md, "Message size"). Each chunk carries a NATS header, CHUNK_HEADER: `<message id> <index>
 * <count>`, the id its sender's replica id and a number, so the chunks of two senders on one subject never mix.
 */

export const CHUNK_HEADER = "Tessera-Chunk";
/** Room a chunk leaves in the server's max_payload for its headers, which count towards it. */
const CHUNK_HEADER_ROOM = 1024;
/**
 * A message whose chunks stopped coming is dropped after this long (a chunk lost: the server drops messages of a
 * subscriber that falls too far behind), or when this many others are being put together on the subscription.
 */
const CHUNKS_WAIT_MS = 30_000;
const CHUNKED_AT_ONCE = 16;

/** `data` as chunks of at most `maxPayload` bytes with their headers, the message named `id`. */
export function chunksOf(data: Uint8Array, maxPayload: number, id: string): Array<{ header: string; data: Uint8Array }> {
  const size = maxPayload - CHUNK_HEADER_ROOM;
  const count = Math.ceil(data.byteLength / size);
  return Array.from({ length: count }, (_, i) => ({ header: `${id} ${i} ${count}`, data: data.subarray(i * size, (i + 1) * size) }));
}

/**
 * The messages of one subscription arriving in chunks, put back together. A chunk that does not follow the one before
 * it (a chunk lost on the way) drops its message, and so does a message larger than the bus carries.
 */
export class ChunkedMessages {
  private readonly pending = new Map<string, { parts: Uint8Array[]; count: number; bytes: number; since: number }>();

  constructor(private readonly maxBytes: number) {}

  /** The whole message once `data` was its last chunk; undefined while more are to come; why, when it is dropped. */
  add(header: string, data: Uint8Array, now: number): Uint8Array | undefined | string {
    for (const [id, m] of this.pending) if (now - m.since > CHUNKS_WAIT_MS) this.pending.delete(id);
    const match = /^(\S{1,80}) (\d{1,6}) (\d{1,6})$/.exec(header);
    const [id, index, count] = match ? [match[1]!, Number(match[2]), Number(match[3])] : ["", -1, 0];
    if (index < 0 || count < 2 || index >= count) return "a malformed chunk header";
    // nats.js hands the callback a view of its read buffer: the chunk is copied before the next read reuses it.
    if (index === 0) {
      if (this.pending.size >= CHUNKED_AT_ONCE) this.pending.delete(this.pending.keys().next().value!);
      this.pending.set(id, { parts: [data.slice()], count, bytes: data.byteLength, since: now });
      return undefined;
    }
    const m = this.pending.get(id);
    if (!m || m.parts.length !== index || m.count !== count) {
      this.pending.delete(id);
      return `chunk ${index} of ${count} of message ${id} does not follow the chunks heard (one was lost)`;
    }
    m.parts.push(data.slice());
    m.bytes += data.byteLength;
    if (m.bytes > this.maxBytes) {
      this.pending.delete(id);
      return `message ${id} is larger than the bus carries`;
    }
    if (m.parts.length < count) return undefined;
    this.pending.delete(id);
    return Buffer.concat(m.parts);
  }
}
