import type { VocabPieces } from "@tessera/protocol";

/** Byte pieces of a vocabulary (from the stage-0 node), shared by every request of one model. */
export class Vocab {
  private readonly bytes: Uint8Array;
  constructor(private readonly pieces: VocabPieces) {
    this.bytes = Buffer.from(pieces.bytes, "base64");
  }
  get size(): number {
    return this.pieces.offsets.length - 1;
  }
  piece(token: number): Uint8Array {
    if (token < 0 || token >= this.size) return new Uint8Array(0);
    return this.bytes.subarray(this.pieces.offsets[token]!, this.pieces.offsets[token + 1]!);
  }
}

/**
 * Incremental detokenization: a character split across byte tokens is held back until complete, so every text
 * delta is valid UTF-8 and the concatenation equals decoding all tokens at once.
 */
export class Detokenizer {
  private readonly decoder = new TextDecoder("utf-8");
  constructor(private readonly vocab: Vocab) {}
  push(token: number): string {
    return this.decoder.decode(this.vocab.piece(token), { stream: true });
  }
  flush(): string {
    return this.decoder.decode();
  }
}
