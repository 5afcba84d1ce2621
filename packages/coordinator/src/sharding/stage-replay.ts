/**
 * One replay of saved stage inputs on a reference (a stage check, trust/design.md "Checking one stage"): the frames
 * are sent one at a time under a fresh request id, each after the answer to the one before, exactly as a failover
 * replays a span's inputs on a replica, so to the reference it is a request like any other. Resolves with the raw
 * answers to every frame, in order; the reference's caches for the id are dropped at the end, whatever happened.
 */
import { randomUUID } from "node:crypto";
import { TesseraError, decodeActivationFrame, encodeActivationFrame, type DecodedActivationFrame } from "@tessera/protocol";
import type { NodeMessenger } from "../workers/node-messenger.js";

export type ReplayTransport = Pick<NodeMessenger, "sendBinary" | "send">;

export class StageReplay {
  readonly requestId = randomUUID();
  readonly answer: Promise<Uint8Array[]>;
  private readonly answers: Uint8Array[] = [];
  private next = 0;
  private expectedSeq = -1;
  private done = false;
  private resolve!: (answers: Uint8Array[]) => void;
  private reject!: (err: Error) => void;
  private readonly frames: Uint8Array[];

  constructor(
    readonly nodeId: string,
    readonly stageId: number,
    frames: readonly Uint8Array[],
    private readonly transport: ReplayTransport,
    private readonly onEnd: (replay: StageReplay) => void,
    onStart: (replay: StageReplay) => void,
  ) {
    this.answer = new Promise((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
    // Re-encoded under this replay's id and the reference's stage id; positions, data and sampling fields as saved.
    this.frames = frames.map((raw) => {
      const f = decodeActivationFrame(raw);
      return encodeActivationFrame({ ...f, requestId: this.requestId, stageId, nodeUs: 0, computeUs: 0 });
    });
    if (this.frames.length === 0) throw new TesseraError("bad_request", "a replay needs at least one frame");
    onStart(this);
    this.sendNext();
  }

  /** An answer frame for this replay's request id from some node. */
  onFrame(nodeId: string, data: Uint8Array, frame: DecodedActivationFrame): void {
    if (this.done || nodeId !== this.nodeId || frame.stageId !== this.stageId || frame.seq !== this.expectedSeq) return;
    this.answers.push(data);
    if (this.next < this.frames.length) return this.sendNext();
    this.finish(undefined);
  }

  onStageError(nodeId: string, code: string, message: string): void {
    if (nodeId === this.nodeId) this.finish(new TesseraError(code === "bad_request" ? "bad_request" : "internal_error", `the reference answered stage.error: [${code}] ${message}`));
  }

  onNodeLost(nodeId: string): void {
    if (nodeId === this.nodeId) this.finish(new TesseraError("node_disconnected", "the reference's session dropped"));
  }

  cancel(): void {
    this.finish(new TesseraError("cancelled", "replay cancelled"));
  }

  private sendNext(): void {
    const frame = this.frames[this.next++]!;
    this.expectedSeq = new DataView(frame.buffer, frame.byteOffset, frame.byteLength).getUint32(12, true);
    if (!this.transport.sendBinary(this.nodeId, frame)) this.finish(new TesseraError("node_disconnected", "the reference has no session"));
  }

  private finish(err: Error | undefined): void {
    if (this.done) return;
    this.done = true;
    this.transport.send(this.nodeId, { type: "stage.drop", request_id: this.requestId });
    this.onEnd(this);
    if (err) this.reject(err);
    else this.resolve(this.answers);
  }
}
