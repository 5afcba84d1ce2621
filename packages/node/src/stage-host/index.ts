export { StageHost, type StageHostOptions, type TextSender, type BinarySender } from "./stage-host.js";
export { describeShardFile, sha256File, type ShardFile } from "./shard-file.js";
export { vocabPieces } from "./vocab-pieces.js";
