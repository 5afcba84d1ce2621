import { createServer } from "node:net";
import { TesseraError } from "@tessera/protocol";

/**
 * Fails with `conflict` naming the flag to change when `port` on `host` is taken, before any slow start-up work
 * (the demo model, the store) is done. Port 0 (any free port) always passes.
 */
export async function ensurePortFree(host: string, port: number): Promise<void> {
  if (port === 0) return;
  await new Promise<void>((resolve, reject) => {
    const server = createServer();
    server.once("error", (err: NodeJS.ErrnoException) => {
      if (err.code === "EADDRINUSE") {
        reject(new TesseraError("conflict", `port ${port} on ${host} is already in use (another coordinator?): choose another with --port <port> (or TESSERA_PORT)`));
      } else if (err.code === "EACCES") {
        reject(new TesseraError("bad_request", `port ${port} on ${host} needs privileges this user lacks: choose one above 1023 with --port <port>`));
      } else {
        reject(new TesseraError("bad_request", `cannot listen on ${host}:${port}: ${err.message} (check --host and --port)`));
      }
    });
    server.listen({ host, port, exclusive: true }, () => server.close(() => resolve()));
  });
}
