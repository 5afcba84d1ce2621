import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import type { OfferRefused } from "@tessera/protocol";

/**
 * What `tessera status --node` shows of this machine's span offer (`<data>/stage-offer-refused.json`): written by the
 * daemon when the coordinator refuses its offer (`offer.refused`), removed when a daemon starts (a new daemon offers
 * anew). Absent: no refusal heard since the daemon started.
 */
export const STAGE_OFFER_REFUSAL_FILE_NAME = "stage-offer-refused.json";

/** A refusal as the daemon recorded it: the coordinator's words plus when, and what the operator can do. */
export interface StageOfferRefusal {
  model: string;
  sha256: string;
  code: string;
  param?: string;
  message: string;
  /** What the operator can do about it (`offerRefusalAdvice`). */
  advice: string;
  /** ISO 8601. */
  at: string;
}

/**
 * What an operator can do about a refused offer, by the field at fault. The file's own figures (layer count, bytes per
 * layer) disagreeing with what another node said for the same hash means the daemons compute them differently; the
 * backend's figures being impossible means this node's runtime or probe misbehaves.
 */
export function offerRefusalAdvice(param: string | undefined): string {
  switch (param) {
    case "layer_count":
    case "bytes_per_layer":
      return "the coordinator holds other figures for this file (same SHA-256), from the first node that offered it: run the same Tessera version on every node that offers the file, or ask the coordinator's operator to check that node";
    case "span_bytes_per_layer":
    case "ms_per_layer":
      return "this node's measured figures for its stage backend cannot be true: check the stage runtime with `tessera doctor`, try another --stage-backend, or update Tessera";
    default:
      return "check that this node runs the same Tessera version as the coordinator";
  }
}

export function offerRefusalRecord(m: OfferRefused, at: Date): StageOfferRefusal {
  return {
    model: m.model,
    sha256: m.sha256,
    code: m.code,
    ...(m.param === undefined ? {} : { param: m.param }),
    message: m.message,
    advice: offerRefusalAdvice(m.param),
    at: at.toISOString(),
  };
}

/** Writes the record where `tessera status` reads it (0600, atomically); `undefined` removes it. Throws on I/O errors. */
export function writeStageOfferRefusal(dataDir: string, record: StageOfferRefusal | undefined): void {
  const file = join(dataDir, STAGE_OFFER_REFUSAL_FILE_NAME);
  if (record === undefined) return rmSync(file, { force: true });
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.tmp`;
  writeFileSync(tmp, JSON.stringify(record, null, 2) + "\n", { mode: 0o600 });
  renameSync(tmp, file);
}

/** The recorded refusal in `dataDir`, or undefined when there is none or the file cannot be read as one. */
export function readStageOfferRefusal(dataDir: string): StageOfferRefusal | undefined {
  try {
    const r = JSON.parse(readFileSync(join(dataDir, STAGE_OFFER_REFUSAL_FILE_NAME), "utf8")) as Partial<StageOfferRefusal>;
    const strings = [r.model, r.sha256, r.code, r.message, r.advice, r.at].every((v) => typeof v === "string");
    return strings && (r.param === undefined || typeof r.param === "string") ? (r as StageOfferRefusal) : undefined;
  } catch {
    return undefined;
  }
}
