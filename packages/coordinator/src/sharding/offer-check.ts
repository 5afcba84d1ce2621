import type { ShardOffer, ShardOfferParam } from "@tessera/protocol";

/**
 * The fastest memory any machine reads weights from, bytes per second (10 TB/s: above HBM3e's 8 TB/s). A decode
 * step reads every weight of a layer once, so no node computes a layer faster than its file bytes at this rate.
 */
export const MAX_MEMORY_BANDWIDTH_BYTES_PER_S = 1e13;
/** No backend runs a layer's dozen ops (norms, seven products, RoPE, softmax) in under a microsecond. */
export const MIN_MS_PER_LAYER = 0.001;

/** What the first offer of a file fixed about it: every later offer of the same SHA-256 must say the same. */
export interface PinnedFile {
  layerCount: number;
  bytesPerLayer: number;
}

/** A refusal names the offer field at fault (`param`), so the node can tell its operator what to look at. */
export type OfferCheck = { ok: true } | { ok: false; code: "bad_request"; param: ShardOfferParam; message: string };

/** The least per-layer time a node may claim for a file whose largest layer is `bytesPerLayer` bytes. */
export function msPerLayerFloor(bytesPerLayer: number): number {
  return Math.max(MIN_MS_PER_LAYER, (bytesPerLayer / MAX_MEMORY_BANDWIDTH_BYTES_PER_S) * 1000);
}

/**
 * Whether a node's offer of a file can be true (nodes are untrusted; the schema has already bounded each field).
 * Refused: a layer count or file bytes per layer other than what the file's first offer said (same hash, other
 * file), a layer held in fewer bytes than the file stores it in (every backend holds at least the file's bytes; an
 * under-stated figure would get the node layers it cannot load), and a per-layer time faster than reading the
 * layer's bytes at the fastest memory there is (an over-stated speed would draw layers and requests to it). A node
 * that over-states its memory per layer or its time only gets fewer layers, so those are not bounded further.
 */
export function checkShardOffer(offer: ShardOffer, pinned: PinnedFile | undefined): OfferCheck {
  const refuse = (param: ShardOfferParam, message: string): OfferCheck => ({ ok: false, code: "bad_request", param, message: `offer of ${offer.sha256.slice(0, 12)}: ${message}` });
  if (pinned && offer.layer_count !== pinned.layerCount) return refuse("layer_count", `layer_count ${offer.layer_count}, but the file has ${pinned.layerCount} layers`);
  if (pinned && offer.bytes_per_layer !== pinned.bytesPerLayer) {
    return refuse("bytes_per_layer", `bytes_per_layer ${offer.bytes_per_layer}, but the file's largest layer is ${pinned.bytesPerLayer} bytes`);
  }
  if (offer.span_bytes_per_layer !== undefined && offer.span_bytes_per_layer < offer.bytes_per_layer) {
    return refuse("span_bytes_per_layer", `span_bytes_per_layer ${offer.span_bytes_per_layer} is less than the ${offer.bytes_per_layer} bytes the file stores a layer in`);
  }
  const floor = msPerLayerFloor(offer.bytes_per_layer);
  if (offer.ms_per_layer !== undefined && offer.ms_per_layer < floor) {
    return refuse("ms_per_layer", `ms_per_layer ${offer.ms_per_layer} is faster than reading a layer of ${offer.bytes_per_layer} bytes allows (at least ${floor} ms)`);
  }
  return { ok: true };
}
