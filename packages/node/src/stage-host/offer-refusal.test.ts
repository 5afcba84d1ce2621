import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { OfferRefused } from "@tessera/protocol";
import { makeTinyModel } from "@tessera/testkit";
import type { NodeLogger } from "../logger.js";
import { STAGE_OFFER_REFUSAL_FILE_NAME, readStageOfferRefusal, writeStageOfferRefusal, type StageOfferRefusal } from "./offer-refusal.js";
import { StageHost } from "./stage-host.js";

/**
 * A node told that its span offer was refused says so where its operator looks: an error line in its log (what, why,
 * what to do) and the record `tessera status --node` reads. A refusal of a file it does not offer changes nothing.
 */
let dir: string;
let path: string;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "tessera-offer-refusal-"));
  path = join(dir, "tiny.gguf");
  await makeTinyModel({ path, seed: 3, vocab: "bytes", blockCount: 2 });
}, 60_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function capture() {
  const lines: Array<{ level: string; text: string }> = [];
  const at = (level: string) => (text: unknown) => void lines.push({ level, text: String(text) });
  const logger = { info: at("info"), warn: at("warn"), error: at("error"), debug: at("debug") } as unknown as NodeLogger;
  return { lines, logger };
}

async function host() {
  const { lines, logger } = capture();
  const records: Array<StageOfferRefusal | undefined> = [];
  const h = await StageHost.create({ modelPath: path, logger, probeSpeed: false, wallNow: () => Date.UTC(2026, 11, 5, 22, 0), recordRefusal: (r) => void records.push(r) });
  lines.length = 0;
  const refusal = (o: Partial<OfferRefused> = {}): OfferRefused => ({
    type: "offer.refused",
    model: h.file.model,
    sha256: h.file.sha256,
    code: "bad_request",
    param: "ms_per_layer",
    message: "offer of abc: ms_per_layer 1e-9 is faster than reading a layer of 4096 bytes allows (at least 0.001 ms)",
    ...o,
  });
  return { h, lines, records, refusal };
}

describe("the stage host hears its offer refused", () => {
  it("logs an error with the model, the code, the field, the reason and what to do, and records it", async () => {
    const { h, lines, records, refusal } = await host();
    // The start cleared whatever a previous daemon recorded.
    expect(records).toEqual([undefined]);
    expect(h.offerRefusal).toBeUndefined();
    h.onOfferRefused(refusal());
    expect(lines).toEqual([{ level: "error", text: expect.stringContaining(`the coordinator refused this node's offer of ${h.file.model} (bad_request, ms_per_layer): offer of abc: ms_per_layer 1e-9`) }]);
    expect(lines[0]!.text).toMatch(/No layer span of it will be placed on this node; .*tessera doctor.*--stage-backend.*restart the daemon/);
    const recorded = {
      model: h.file.model,
      sha256: h.file.sha256,
      code: "bad_request",
      param: "ms_per_layer",
      message: refusal().message,
      advice: expect.stringContaining("tessera doctor"),
      at: "2026-12-05T22:00:00.000Z",
    };
    expect(h.offerRefusal).toEqual(recorded);
    expect(records).toEqual([undefined, recorded]);
  });

  it("a layer count the coordinator holds otherwise points the operator at the other nodes' version", async () => {
    const { h, lines, refusal } = await host();
    h.onOfferRefused(refusal({ param: "layer_count", message: "offer of abc: layer_count 2, but the file has 3 layers" }));
    expect(lines[0]!.text).toMatch(/\(bad_request, layer_count\): offer of abc: layer_count 2.*same Tessera version on every node that offers the file/);
  });

  it("ignores a refusal of a file it does not offer (a confused or hostile coordinator), with a warning", async () => {
    const { h, lines, records, refusal } = await host();
    h.onOfferRefused(refusal({ sha256: "f".repeat(64) }));
    expect(h.offerRefusal).toBeUndefined();
    expect(records).toEqual([undefined]);
    expect(lines).toEqual([{ level: "warn", text: expect.stringMatching(/refused an offer of ffffffffffff…, a file this node does not offer.*ignored/) }]);
  });

  it("a record that cannot be written is a warning, not a crash", async () => {
    const { lines, logger } = capture();
    const h = await StageHost.create({ modelPath: path, logger, probeSpeed: false, recordRefusal: () => { throw new Error("EACCES: permission denied"); } });
    lines.length = 0;
    h.onOfferRefused({ type: "offer.refused", model: h.file.model, sha256: h.file.sha256, code: "bad_request", message: "no" });
    expect(h.offerRefusal).toMatchObject({ code: "bad_request", message: "no", advice: expect.stringContaining("same Tessera version as the coordinator") });
    expect(lines.map((l) => l.level)).toEqual(["error", "warn"]);
    expect(lines[1]!.text).toMatch(/could not record .*EACCES/);
  });
});

describe("the record tessera status reads", () => {
  it("is written 0600 and read back; removed with undefined", () => {
    const data = mkdtempSync(join(dir, "data-"));
    const record: StageOfferRefusal = { model: "m", sha256: "a".repeat(64), code: "bad_request", param: "ms_per_layer", message: "why", advice: "do", at: "2026-12-05T22:00:00.000Z" };
    writeStageOfferRefusal(data, record);
    expect(statSync(join(data, STAGE_OFFER_REFUSAL_FILE_NAME)).mode & 0o777).toBe(0o600);
    expect(readStageOfferRefusal(data)).toEqual(record);
    writeStageOfferRefusal(data, undefined);
    expect(readStageOfferRefusal(data)).toBeUndefined();
    writeStageOfferRefusal(data, undefined);
  });

  it("a file that is not a record reads as none", () => {
    const data = mkdtempSync(join(dir, "data-"));
    const file = join(data, STAGE_OFFER_REFUSAL_FILE_NAME);
    for (const text of ["not json", "null", "[]", JSON.stringify({ model: "m", code: 3 }), JSON.stringify({ model: "m", sha256: "s", code: "c", message: "m", advice: "a", at: "t", param: 1 })]) {
      writeFileSync(file, text);
      expect(readStageOfferRefusal(data)).toBeUndefined();
    }
    expect(readFileSync(file, "utf8")).toContain("param");
  });
});
