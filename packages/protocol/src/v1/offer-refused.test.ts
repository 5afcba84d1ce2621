import { describe, expect, it } from "vitest";
import { CoordinatorMessage } from "./session.js";
import { OfferRefused, SHARD_OFFER_PARAMS, ShardOffer, StageCoordinatorMessage } from "./stage.js";

/**
 * `offer.refused`: the coordinator tells a node that its span offer was refused, with a stable code, the offer field
 * at fault and the reason. The daemon parses every session message with `CoordinatorMessage`, so what this schema
 * refuses is what a daemon ignores from a confused or hostile coordinator.
 */
const SHA = "a".repeat(64);
const refusal = {
  type: "offer.refused",
  model: "llama-70b.Q8_0",
  sha256: SHA,
  code: "bad_request",
  param: "ms_per_layer",
  message: "offer of aaaaaaaaaaaa: ms_per_layer 1e-9 is faster than reading a layer of 10485760 bytes allows (at least 0.001 ms)",
};

describe("offer.refused", () => {
  it("is a coordinator message a daemon parses, with the code, the field at fault and the reason", () => {
    expect(CoordinatorMessage.parse(refusal)).toEqual(refusal);
    const { param: _param, ...withoutParam } = refusal;
    expect(CoordinatorMessage.parse(withoutParam)).toEqual(withoutParam);
  });

  it("names only fields an offer has, and reads a field name it does not know (a newer coordinator's) leniently", () => {
    for (const param of SHARD_OFFER_PARAMS) expect(Object.keys(ShardOffer.shape)).toContain(param);
    expect(OfferRefused.parse({ ...refusal, param: "gpu_bytes_per_layer" }).param).toBe("gpu_bytes_per_layer");
  });

  it.each([
    ["no sha256", { sha256: undefined }],
    ["a sha256 that is not 64 lowercase hex", { sha256: "A".repeat(64) }],
    ["a model id with spaces or markup", { model: "<script>x</script>" }],
    ["a code outside the closed set", { code: "you_are_banned" }],
    ["a message with a newline (a forged log line)", { message: "refused\n2026-12-05 INFO all good" }],
    ["a message with a line separator", { message: "refused\u2028forged" }],
    ["a message with an escape sequence", { message: "refused \u001b[2J" }],
    ["a message past 4096 characters", { message: "x".repeat(4097) }],
    ["a param that is not a field name", { param: "ms per layer; rm -rf /" }],
    ["a number for the message", { message: 42 }],
  ])("is refused with %s", (_name, change) => {
    expect(CoordinatorMessage.safeParse({ ...refusal, ...change }).success).toBe(false);
  });

  it("is not span work: the stage host's message union does not take it", () => {
    expect(StageCoordinatorMessage.safeParse(refusal).success).toBe(false);
  });
});
