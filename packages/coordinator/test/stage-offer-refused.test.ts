import { afterEach, describe, expect, it } from "vitest";
import { CoordinatorMessage, type OfferRefused } from "@tessera/protocol";
import { type ScriptedNetwork, scriptedNetwork } from "./harness.js";

/**
 * A node whose span offer cannot be true hears so on its session (`offer.refused`), so its operator sees why it is
 * never given a span; before, only the coordinator's log said it.
 */
let net: ScriptedNetwork | undefined;
afterEach(async () => {
  await net?.close();
  net = undefined;
});

const offer = (o: object = {}) => ({
  type: "stage.offer",
  shards: [{ model: "big", sha256: "c".repeat(64), layer_count: 8, bytes_per_layer: 10 * 2 ** 20, free_memory_bytes: 1e10, ...o }],
});

async function refusalsOf(node: ScriptedNetwork["nodes"][number], count: number): Promise<OfferRefused[]> {
  const got = () => node.received.filter((m): m is OfferRefused => m.type === "offer.refused");
  for (let i = 0; i < 300 && got().length < count; i++) await new Promise((r) => setTimeout(r, 10));
  return got();
}

describe("offer.refused on the node's session", () => {
  it("an offer faster than memory can be read is refused to the node with bad_request, ms_per_layer and the reason", async () => {
    net = await scriptedNetwork(2);
    const [liar, honest] = net.nodes;
    liar!.send(offer({ ms_per_layer: 1e-9 }));
    honest!.send(offer({ ms_per_layer: 1 }));
    const told = await refusalsOf(liar!, 1);
    expect(told).toEqual([{
      type: "offer.refused",
      model: "big",
      sha256: "c".repeat(64),
      code: "bad_request",
      param: "ms_per_layer",
      message: expect.stringMatching(/^offer of cccccccccccc: ms_per_layer 1e-9 is faster than reading a layer of 10485760 bytes allows/),
    }]);
    // It is what a daemon parses, and the honest node (whose offer placed spans) is told nothing of it.
    expect(CoordinatorMessage.safeParse(told[0]).success).toBe(true);
    await new Promise((r) => setTimeout(r, 50));
    expect(honest!.received.filter((m) => m.type === "offer.refused")).toEqual([]);
    expect(honest!.received.some((m) => m.type === "stage.load")).toBe(true);
  });

  it("is said again each time the node offers the same untrue figures (a new session, an enlist)", async () => {
    net = await scriptedNetwork(1);
    const [node] = net.nodes;
    node!.send(offer({ span_bytes_per_layer: 1 }));
    node!.send(offer({ span_bytes_per_layer: 1 }));
    expect((await refusalsOf(node!, 2)).map((m) => m.param)).toEqual(["span_bytes_per_layer", "span_bytes_per_layer"]);
  });
});
