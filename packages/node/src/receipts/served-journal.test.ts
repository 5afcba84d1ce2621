import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, appendFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { JOURNAL_FILE_NAME, ServedJournal, parseJournalLine } from "./served-journal.js";

const SHA = "ab".repeat(32);
const COMMIT = "cd".repeat(32);
const DAY = 24 * 3600 * 1000;

let dir: string;
let path: string;
let now: number;
const open = (extra: { maxLines?: number; warn?: (m: string) => void } = {}) => ServedJournal.open({ path, now: () => now, ...extra });
const job = (id: string) => ({ job_id: id, model: "tiny", model_sha256: SHA, stop: false });

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "tessera-journal-"));
  path = join(dir, "data", JOURNAL_FILE_NAME);
  now = Date.UTC(2026, 11, 1);
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe("served-work journal", () => {
  it("records an accepted job and completes it when the turn ends; a restarted daemon still knows both", () => {
    const j = open();
    j.accepted(job("j1"));
    expect(j.entriesFor("j1")).toEqual([{ ...job("j1"), at: now, end: "accepted", output_tokens: null, result_commitment: null }]);
    now += 1000;
    j.ended({ ...job("j1"), end: "finished", output_tokens: 7, result_commitment: COMMIT });
    j.accepted(job("j2")); // killed mid-stream: only its acceptance is known
    j.close();

    const again = open();
    expect(again.entriesFor("j1")).toEqual([{ ...job("j1"), at: now, end: "finished", output_tokens: 7, result_commitment: COMMIT }]);
    expect(again.entriesFor("j2")).toMatchObject([{ end: "accepted", output_tokens: null }]);
    expect(again.entriesFor("nope")).toEqual([]);
    // The file is private and holds one line per entry after the rewrite on start.
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, "data")).mode & 0o777).toBe(0o700);
    expect(readFileSync(path, "utf8").trim().split("\n")).toHaveLength(2);
    again.close();
  });

  it("keeps one entry per segment when the node serves the same job twice", () => {
    const j = open();
    j.accepted(job("j1"));
    j.ended({ ...job("j1"), end: "lost", output_tokens: 3, result_commitment: null });
    j.accepted(job("j1"));
    j.ended({ ...job("j1"), end: "finished", output_tokens: 5, result_commitment: COMMIT });
    j.close();
    expect(open().entriesFor("j1").map((e) => [e.end, e.output_tokens])).toEqual([["lost", 3], ["finished", 5]]);
  });

  it("skips a corrupt line, says so, and drops it when it rewrites the file on start", () => {
    const j = open();
    j.accepted(job("j1"));
    j.close();
    appendFileSync(path, '{"job_id":"broken",\nnot json at all\n{"job_id":"j9","at":1}\n[1,2]\n');
    const j2 = open();
    j2.ended({ ...job("j2"), end: "finished", output_tokens: 2, result_commitment: null });
    j2.close();
    const warnings: string[] = [];
    const j3 = open({ warn: (m) => warnings.push(m) });
    expect(warnings).toEqual([]);
    expect(j3.size).toBe(2);
    writeFileSync(path, `${readFileSync(path, "utf8")}garbage\n`);
    open({ warn: (m) => warnings.push(m) }).close();
    expect(warnings).toEqual([`served-work journal ${path}: skipped 1 unreadable line(s)`]);
    expect(readFileSync(path, "utf8")).not.toContain("garbage");
  });

  it("forgets entries older than 7 days when it starts", () => {
    const j = open();
    j.accepted(job("old"));
    now += 6 * DAY;
    j.accepted(job("recent"));
    j.close();
    now += 1.5 * DAY;
    const again = open();
    expect(again.entriesFor("old")).toEqual([]);
    expect(again.entriesFor("recent")).toHaveLength(1);
    expect(readFileSync(path, "utf8")).not.toContain('"old"');
  });

  it("keeps at most maxLines entries, newest kept, on start and while running", () => {
    const j = open({ maxLines: 3 });
    for (let i = 0; i < 5; i++) j.accepted(job(`j${i}`));
    expect(j.size).toBe(3);
    expect(j.entriesFor("j0")).toEqual([]);
    for (let i = 5; i < 9; i++) j.accepted(job(`j${i}`)); // past 2 × maxLines lines in the file: rewritten
    expect(readFileSync(path, "utf8").trim().split("\n").length).toBeLessThanOrEqual(6);
    j.close();
    const again = open({ maxLines: 3 });
    expect(["j6", "j7", "j8"].map((id) => again.entriesFor(id).length)).toEqual([1, 1, 1]);
    expect(again.entriesFor("j5")).toEqual([]);
    expect(readFileSync(path, "utf8").trim().split("\n")).toHaveLength(3);
  });

  it("parses only lines it wrote", () => {
    const good = { job_id: "j", at: 1, model: "m", model_sha256: null, end: "cancelled", output_tokens: 0, result_commitment: null, stop: true };
    expect(parseJournalLine(JSON.stringify(good))).toEqual(good);
    for (const bad of [{ ...good, end: "eaten" }, { ...good, model_sha256: "XY" }, { ...good, output_tokens: -1 }, { ...good, output_tokens: 1.5 }, { ...good, job_id: "" }, { ...good, stop: "no" }]) {
      expect(parseJournalLine(JSON.stringify(bad))).toBeUndefined();
    }
  });
});
