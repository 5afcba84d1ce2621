export { startCluster, waitUntil, TESSERA_BIN, type AddNodeOptions, type Cluster, type ClusterNode, type ClusterOptions } from "./cluster.js";
export { ManagedProcess } from "./managed-process.js";
export { freePort } from "./free-port.js";
export { killMidStream, type KillMidStreamResult } from "./kill-mid-stream.js";
export { streamGreedyChat, type GreedyChatRequest, type GreedyChatStream } from "./stream-greedy-chat.js";
export { continuationPrefixTokens } from "./continuation-prefix.js";
