export { NATS_URL, POSTGRES_ADMIN_URL, createScratchDatabase, probePostgresServer } from "./scratch-database.js";
export { natsServerBinary, probeNatsServer, startNatsServer } from "./nats-server.js";
export { ReplicaNetwork, type DaemonProcess, type ReplicaProcess } from "./replica-network.js";
