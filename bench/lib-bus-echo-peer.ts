/**
 * The far end of `bench replicas-hops`' hop calibration, run as its own process: it answers each message on
 * `<prefix>.ping` (NATS) and each line on its TCP port with the wall-clock time it received it
 * (performance.timeOrigin + now, comparable across processes on one machine). Prints `ready <port>` once both listen.
 *
 *   node --import tsx bench/lib-bus-echo-peer.ts --nats nats://127.0.0.1:4222 --prefix tessera.bench.hop.123
 */
import { createServer } from "node:net";
import { parseArgs } from "node:util";
import { connect } from "@nats-io/transport-node";

const { values } = parseArgs({ options: { nats: { type: "string" }, prefix: { type: "string" } } });
const wall = () => performance.timeOrigin + performance.now();
const encoder = new TextEncoder();
const nc = await connect({ servers: values.nats! });
nc.subscribe(`${values.prefix!}.ping`, { callback: () => nc.publish(`${values.prefix!}.pong`, encoder.encode(String(wall()))) });
await nc.flush();
const server = createServer({ noDelay: true }, (socket) => socket.on("data", () => socket.write(`${wall()}\n`)));
server.listen(0, "127.0.0.1", () => {
  const address = server.address();
  process.stdout.write(`ready ${typeof address === "object" && address ? address.port : 0}\n`);
});
process.on("SIGTERM", () => {
  server.close();
  void nc.close().then(() => process.exit(0));
});
