/**
 * A loopback echo in its own process, for the pipeline bench's hop latency: a WebSocket server that sends every
 * binary message back, and a raw TCP server (TCP_NODELAY) that echoes bytes. Prints `PORTS <ws> <tcp>` when ready.
 * A round trip to it costs what a pipeline hop costs without any Tessera code: two process wake-ups, loopback TCP and
 * (for the WebSocket) ws framing. A WebSocket message starting with a nonzero u32 (little-endian) makes the server
 * busy for that many microseconds before it answers, as a stage computes before it sends its output.
 */
import { createServer } from "node:net";
import { WebSocketServer } from "ws";

const wss = new WebSocketServer({ port: 0, host: "127.0.0.1", perMessageDeflate: false });
wss.on("connection", (ws) =>
  ws.on("message", (data, isBinary) => {
    const message = data as Buffer;
    const workUs = message.length >= 4 ? message.readUInt32LE(0) : 0;
    const until = performance.now() + workUs / 1000;
    while (performance.now() < until);
    ws.send(message, { binary: isBinary });
  }),
);
const tcp = createServer((socket) => {
  socket.setNoDelay(true);
  socket.on("data", (chunk) => socket.write(chunk));
});
tcp.listen(0, "127.0.0.1", () => {
  const wsPort = (wss.address() as { port: number }).port;
  const tcpPort = (tcp.address() as { port: number }).port;
  process.stdout.write(`PORTS ${wsPort} ${tcpPort}\n`);
});
process.stdin.on("end", () => process.exit(0));
process.stdin.resume();
