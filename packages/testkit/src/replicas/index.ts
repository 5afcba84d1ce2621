export { NATS_URL, POSTGRES_ADMIN_URL, createScratchDatabase, probePostgresServer } from "./scratch-database.js";
export { probeNatsServer } from "./nats-server.js";
export { ReplicaNetwork, type DaemonProcess, type ReplicaProcess } from "./replica-network.js";
