import WebSocket from "ws";
import { type CheckScore, type CoordinatorMessage, type EmbedRequest, type JobAssignment, SESSION_PATH, type Signer, type StreamPart, signRequest } from "@tessera/protocol";

/**
 * A node played by the test over a real WebSocket session: it accepts what it is told to and streams scripted
 * parts, so coordinator behaviour can be checked without an inference engine.
 */
export class ScriptedNode {
  readonly assignments: JobAssignment[] = [];
  readonly cancels: string[] = [];
  /** Every message the coordinator sent, pings included, in order. */
  readonly received: CoordinatorMessage[] = [];
  /** Spot checks this node was asked to score (as a reference). */
  readonly checks: CheckScore[] = [];
  /** Embedding requests this node was sent, and what to do with one; default: nothing (the request times out). */
  readonly embeds: EmbedRequest[] = [];
  onEmbed: (request: EmbedRequest, node: ScriptedNode) => void = () => undefined;
  /** What to do with a spot check; default: nothing (the check times out). */
  onCheck: (check: CheckScore, node: ScriptedNode) => void = () => undefined;
  /** Answer the coordinator's pings (a live daemon does); false plays a node whose session hangs silent. */
  answerPings = true;
  private ws!: WebSocket;
  /** What to do with an assignment; default: accept and stream "Hello world" in two parts. */
  onAssign: (job: JobAssignment, node: ScriptedNode) => void = (job, node) => {
    node.accept(job.job_id);
    node.stream(job.job_id, [
      { type: "text-delta", text: "Hello" },
      { type: "text-delta", text: " world" },
      { type: "usage", prompt_tokens: 7, completion_tokens: 2 },
      { type: "finish", reason: "stop" },
    ]);
  };

  constructor(
    private readonly baseUrl: string,
    private readonly signer: Signer,
    private readonly nowSeconds: () => number,
  ) {}

  async connect(): Promise<void> {
    const headers = signRequest(this.signer, { method: "GET", path: SESSION_PATH }, { nowSeconds: this.nowSeconds() });
    this.ws = new WebSocket(this.baseUrl.replace(/^http/, "ws") + SESSION_PATH, { headers });
    await new Promise<void>((resolve, reject) => {
      this.ws.once("open", () => resolve());
      this.ws.once("unexpected-response", (_req, res) => reject(new Error(`upgrade refused: ${res.statusCode}`)));
      this.ws.once("error", reject);
    });
    this.ws.on("message", (data) => {
      const msg = JSON.parse(data.toString()) as CoordinatorMessage;
      this.received.push(msg);
      if (msg.type === "ping") {
        if (this.answerPings) this.send({ type: "pong", sent_at: msg.sent_at });
      }
      else if (msg.type === "job.assign") {
        this.assignments.push(msg);
        this.onAssign(msg, this);
      } else if (msg.type === "job.cancel") this.cancels.push(msg.job_id);
      else if (msg.type === "embed.request") {
        this.embeds.push(msg);
        this.onEmbed(msg, this);
      } else if (msg.type === "check.score") {
        this.checks.push(msg);
        this.onCheck(msg, this);
      }
    });
  }

  accept(jobId: string): void {
    this.send({ type: "job.accept", job_id: jobId });
  }

  stream(jobId: string, parts: StreamPart[]): void {
    for (const part of parts) this.send({ type: "job.part", job_id: jobId, part });
  }

  send(message: object): void {
    this.ws.send(JSON.stringify(message));
  }

  async close(): Promise<void> {
    if (this.ws.readyState === WebSocket.CLOSED) return;
    const closed = new Promise((r) => this.ws.once("close", r));
    this.ws.close();
    await closed;
  }
}
