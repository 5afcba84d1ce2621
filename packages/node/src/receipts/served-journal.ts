import { chmodSync, closeSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from "node:fs";
import { dirname } from "node:path";

/**
 * The served-work journal: what this node served, so it can check a receipt before signing it (check-receipt.ts),
 * including after a restart. One JSON object a line in `<data dir>/served-jobs.jsonl` (0600):
 * - an `accepted` line when the node accepts a job (a daemon killed mid-stream still knows it took the job);
 * - an end line when its turn at the job is over (`finished`, `cancelled`, `lost` or `failed`) with the output tokens
 *   it streamed, counted as the coordinator counts them (served-tally.ts), and its result commitment's digest.
 * An end line completes the latest open `accepted` entry of the same job; a node that served two segments of one job
 * has two entries. On open the file is read (a line that does not parse is skipped, never fatal) and rewritten with
 * only the entries of the last `maxAgeMs` (7 days), at most `maxLines` (100,000) of them, newest kept. Writes are
 * synchronous appends: one short line per job, never per token, and a line written just before a crash is kept.
 */
export const JOURNAL_FILE_NAME = "served-jobs.jsonl";
export const JOURNAL_MAX_AGE_MS = 7 * 24 * 3600 * 1000;
export const JOURNAL_MAX_LINES = 100_000;

export type ServedEnd = "accepted" | "finished" | "cancelled" | "lost" | "failed";

export interface ServedEntry {
  job_id: string;
  /** When the line was written, ms since the epoch. */
  at: number;
  model: string;
  /** The model file's SHA-256 the node served with, or null (no file: an HTTP backend). */
  model_sha256: string | null;
  /** `accepted` until the turn ended. */
  end: ServedEnd;
  /** Output tokens streamed, counted as the coordinator counts them; null while only accepted. */
  output_tokens: number | null;
  /** The digest of the result commitment the node signed (result-commitment.ts), or null when it sent none. */
  result_commitment: string | null;
  /** The job had stop sequences: the coordinator may end the answer before the node did. */
  stop: boolean;
}

export interface JournalOptions {
  path: string;
  now: () => number;
  maxAgeMs?: number;
  maxLines?: number;
  /** Told about skipped lines and failed writes; the journal never throws after opening. */
  warn?: (message: string) => void;
}

const HEX64 = /^[0-9a-f]{64}$/;
const ENDS: ReadonlySet<string> = new Set(["accepted", "finished", "cancelled", "lost", "failed"]);

/** A parsed line, or undefined when it is not one the journal wrote. */
export function parseJournalLine(line: string): ServedEntry | undefined {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) return undefined;
  const e = v as Record<string, unknown>;
  const okJob = typeof e.job_id === "string" && e.job_id.length > 0 && e.job_id.length <= 64;
  const okAt = typeof e.at === "number" && Number.isSafeInteger(e.at) && e.at >= 0;
  const okModel = typeof e.model === "string";
  const okSha = e.model_sha256 === null || (typeof e.model_sha256 === "string" && HEX64.test(e.model_sha256));
  const okEnd = typeof e.end === "string" && ENDS.has(e.end);
  const okTokens = e.output_tokens === null || (typeof e.output_tokens === "number" && Number.isSafeInteger(e.output_tokens) && e.output_tokens >= 0);
  const okCommit = e.result_commitment === null || (typeof e.result_commitment === "string" && HEX64.test(e.result_commitment));
  const okStop = typeof e.stop === "boolean";
  if (!(okJob && okAt && okModel && okSha && okEnd && okTokens && okCommit && okStop)) return undefined;
  return {
    job_id: e.job_id as string,
    at: e.at as number,
    model: e.model as string,
    model_sha256: e.model_sha256 as string | null,
    end: e.end as ServedEnd,
    output_tokens: e.output_tokens as number | null,
    result_commitment: e.result_commitment as string | null,
    stop: e.stop as boolean,
  };
}

function lineOf(e: ServedEntry): string {
  return `${JSON.stringify({ job_id: e.job_id, at: e.at, model: e.model, model_sha256: e.model_sha256, end: e.end, output_tokens: e.output_tokens, result_commitment: e.result_commitment, stop: e.stop })}\n`;
}

export class ServedJournal {
  private readonly byJob = new Map<string, ServedEntry[]>();
  /** Entries in the order they were last written, oldest first (what the bounds drop from). */
  private order: ServedEntry[] = [];
  private fd: number | undefined;
  private linesInFile = 0;
  private readonly maxAgeMs: number;
  private readonly maxLines: number;

  private constructor(private readonly options: JournalOptions) {
    this.maxAgeMs = options.maxAgeMs ?? JOURNAL_MAX_AGE_MS;
    this.maxLines = options.maxLines ?? JOURNAL_MAX_LINES;
  }

  /** Reads the journal (creating its directory 0700 and the file 0600 when missing) and rewrites it within bounds. */
  static open(options: JournalOptions): ServedJournal {
    const journal = new ServedJournal(options);
    mkdirSync(dirname(options.path), { recursive: true, mode: 0o700 });
    let text = "";
    try {
      text = readFileSync(options.path, "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    }
    let skipped = 0;
    for (const line of text.split("\n")) {
      if (line.trim() === "") continue;
      const entry = parseJournalLine(line);
      if (entry) journal.apply(entry);
      else skipped++;
    }
    if (skipped > 0) options.warn?.(`served-work journal ${options.path}: skipped ${skipped} unreadable line(s)`);
    journal.rewrite();
    return journal;
  }

  /** Entries kept now, oldest first. */
  get size(): number {
    return this.order.length;
  }

  /** This job's entries (one per segment the node served), oldest first; empty when the node never served it. */
  entriesFor(jobId: string): readonly ServedEntry[] {
    return this.byJob.get(jobId) ?? [];
  }

  accepted(job: { job_id: string; model: string; model_sha256: string | null; stop: boolean }): void {
    this.record({ ...job, at: this.options.now(), end: "accepted", output_tokens: null, result_commitment: null });
  }

  ended(job: { job_id: string; model: string; model_sha256: string | null; stop: boolean; end: Exclude<ServedEnd, "accepted">; output_tokens: number; result_commitment: string | null }): void {
    this.record({ ...job, at: this.options.now() });
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }

  private record(entry: ServedEntry): void {
    this.apply(entry);
    this.trim();
    try {
      if (this.linesInFile >= 2 * this.maxLines) this.rewrite();
      else {
        this.fd ??= openSync(this.options.path, "a", 0o600);
        writeSync(this.fd, lineOf(entry));
        this.linesInFile++;
      }
    } catch (err) {
      this.options.warn?.(`could not write the served-work journal ${this.options.path}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  /** An end line completes the latest open entry of its job; anything else is a new entry. */
  private apply(entry: ServedEntry): void {
    const list = this.byJob.get(entry.job_id) ?? [];
    const open = entry.end === "accepted" ? undefined : list.findLast((e) => e.end === "accepted");
    if (open) {
      list.splice(list.indexOf(open), 1);
      this.order.splice(this.order.lastIndexOf(open), 1);
    }
    list.push(entry);
    this.byJob.set(entry.job_id, list);
    this.order.push(entry);
  }

  /** Drops entries older than the age bound, then the oldest past the line bound. */
  private trim(): void {
    const oldest = this.options.now() - this.maxAgeMs;
    let drop = 0;
    while (drop < this.order.length && (this.order[drop]!.at < oldest || this.order.length - drop > this.maxLines)) drop++;
    if (drop === 0) return;
    for (const e of this.order.slice(0, drop)) {
      const list = this.byJob.get(e.job_id)!;
      list.splice(list.indexOf(e), 1);
      if (list.length === 0) this.byJob.delete(e.job_id);
    }
    this.order = this.order.slice(drop);
  }

  /** Writes the kept entries to a temp file and renames it over the journal (a crash leaves one or the other). */
  private rewrite(): void {
    this.trim();
    this.close();
    const tmp = `${this.options.path}.tmp`;
    const fd = openSync(tmp, "w", 0o600);
    try {
      const chunk = 4096;
      for (let i = 0; i < this.order.length; i += chunk) writeSync(fd, this.order.slice(i, i + chunk).map(lineOf).join(""));
    } finally {
      closeSync(fd);
    }
    chmodSync(tmp, 0o600);
    renameSync(tmp, this.options.path);
    this.linesInFile = this.order.length;
  }
}
