import { describe, expect, it } from "vitest";
import { pino } from "pino";
import { type JobAssignment, generateKeyPair, secretKeySigner } from "@tessera/protocol";
import { JobRunner, SESSION_LOST } from "../src/job-runner.js";
import { ScriptedBackend } from "./scripted-backend.js";
import type { ServedEntry } from "../src/receipts/served-journal.js";

const SHA = "ab".repeat(32);
const assignment = (id: string, stop?: string[]): JobAssignment =>
  ({
    type: "job.assign",
    job_id: id,
    model: "tiny",
    messages: [{ role: "user", content: "hi" }],
    sampling: { max_tokens: 16, temperature: 0, top_p: 1, seed: 1, ...(stop ? { stop } : {}) },
  }) as JobAssignment;

function runner(backend: ScriptedBackend) {
  const lines: Array<{ kind: "accepted" | "ended"; entry: Partial<ServedEntry> }> = [];
  const r = new JobRunner({
    backend,
    maxConcurrency: 2,
    isServed: () => true,
    logger: pino({ level: "silent" }),
    now: () => 0,
    signer: secretKeySigner(generateKeyPair().secretKeyHex),
    modelSha256: () => SHA,
    journal: { accepted: (e) => lines.push({ kind: "accepted", entry: e }), ended: (e) => lines.push({ kind: "ended", entry: e }) },
  });
  return { r, lines };
}

describe("the job runner's served-work journal", () => {
  it("records the job at accept time and its end with the tokens streamed and the result commitment", async () => {
    const { r, lines } = runner(new ScriptedBackend(["a", "b", "c"], { tokenIds: true }));
    const frames: string[] = [];
    r.assign(assignment("j1", ["zz"]), (f) => frames.push(f));
    expect(lines).toEqual([{ kind: "accepted", entry: { job_id: "j1", model: "tiny", model_sha256: SHA, stop: true } }]);
    await r.idle();
    expect(lines[1]).toMatchObject({ kind: "ended", entry: { job_id: "j1", end: "finished", output_tokens: 3, stop: true } });
    expect(lines[1]!.entry.result_commitment).toMatch(/^[0-9a-f]{64}$/);
    expect(frames.some((f) => f.includes('"type":"result"'))).toBe(true);
  });

  it("records a turn cut by a lost session as lost, and a cancelled one as cancelled, with what was streamed", async () => {
    const backend = new ScriptedBackend(["a", "b", "c", "d"], { tokenIds: true, holdAt: 2 });
    const { r, lines } = runner(backend);
    r.assign(assignment("j1"), () => {});
    r.assign(assignment("j2"), () => {});
    await new Promise((res) => setTimeout(res, 10));
    r.cancel("j2", "client gone");
    await new Promise((res) => setTimeout(res, 10));
    r.abortAll(SESSION_LOST);
    await r.idle();
    const ends = Object.fromEntries(lines.filter((l) => l.kind === "ended").map((l) => [l.entry.job_id, l.entry]));
    expect(ends.j1).toMatchObject({ end: "lost", output_tokens: 2, result_commitment: null });
    expect(ends.j2).toMatchObject({ end: "cancelled", output_tokens: 2, result_commitment: null });
  });

  it("records nothing for a rejected job", () => {
    const { r, lines } = runner(new ScriptedBackend(["a"]));
    r.startDraining();
    r.assign(assignment("j1"), () => {});
    expect(lines).toEqual([]);
  });
});
