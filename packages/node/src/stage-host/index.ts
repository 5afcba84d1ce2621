export { StageHost, type StageHostOptions, type TextSender, type BinarySender } from "./stage-host.js";
export { describeShardFile, type ShardFile } from "./shard-file.js";
export { sha256File } from "../file-sha256.js";
export { vocabPieces } from "./vocab-pieces.js";
export { stageMemoryOffer } from "./memory-offer.js";
export {
  STAGE_OFFER_REFUSAL_FILE_NAME,
  offerRefusalAdvice,
  readStageOfferRefusal,
  writeStageOfferRefusal,
  type StageOfferRefusal,
} from "./offer-refusal.js";
