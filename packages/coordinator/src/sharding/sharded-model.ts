import type { ShardOffer } from "@tessera/protocol";
import type { LayerRange } from "../placement/index.js";
import type { Vocab } from "./detokenizer.js";
import type { LoadedStage } from "./stage-path.js";

/** A stage the coordinator asked a node to load; `loaded` once the node said `stage.loaded`. */
export interface StageState extends LoadedStage {
  loaded: boolean;
  waiters: Array<{ resolve(): void; reject(err: Error): void }>;
}

/** One sharded model (one GGUF file, by SHA-256): who offers it, which stages are placed, the node id of its pipeline. */
export interface ShardedModel {
  sha256: string;
  name: string;
  layerCount: number;
  /** The file's largest layer in bytes, as its first offer said (every later offer must agree; offer-check.ts). */
  fileBytesPerLayer: number;
  offers: Map<string, ShardOffer>;
  stages: Map<number, StageState>;
  /** Bumped on every placement; a request keeps the stages of the version it started with. */
  version: number;
  /** The id its pipeline is registered, scheduled and billed under, derived from the file hash. */
  pipelineId: string;
  vocab: Vocab | undefined;
  /** Set when the last placement could not cover every layer: the layers no offering node can hold. */
  unplaced: LayerRange[] | undefined;
}
