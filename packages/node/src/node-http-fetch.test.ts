import { once } from "node:events";
import { type IncomingMessage, type Server, type ServerResponse, createServer } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { errorFromFetchFailure } from "./backends/http/backend-error.js";
import { keptAliveIdleMs, nodeHttpFetch } from "./node-http-fetch.js";

let server: Server | undefined;

async function serve(handler: (req: IncomingMessage, res: ServerResponse, body: string) => void): Promise<string> {
  server = createServer((req, res) => {
    let body = "";
    req.setEncoding("utf8");
    req.on("data", (chunk: string) => (body += chunk));
    req.on("end", () => handler(req, res, body));
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

afterEach(async () => {
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve) ?? resolve(undefined));
  server = undefined;
});

/** A server that answers with one chunk and keeps the body open; `closed` resolves when the connection goes. */
async function serveOpenBody(): Promise<{ base: string; closed: Promise<unknown> }> {
  let closed!: (value: unknown) => void;
  const done = new Promise((resolve) => (closed = resolve));
  const base = await serve((_req, res) => {
    res.once("close", closed);
    res.writeHead(200);
    res.write("first");
  });
  return { base, closed: done };
}

async function readAll(res: Response): Promise<string> {
  return new TextDecoder().decode(await res.arrayBuffer());
}

describe("nodeHttpFetch", () => {
  it("sends the method, headers and body, and answers with the status, headers and body", async () => {
    let seen: { method?: string; type?: string; length?: string; auth?: string; body: string } | undefined;
    const base = await serve((req, res, body) => {
      seen = { method: req.method, type: req.headers["content-type"], length: req.headers["content-length"], auth: req.headers.authorization, body };
      res.writeHead(201, "Made", { "content-type": "application/json", "x-one": "1" });
      res.end(JSON.stringify({ ok: true }));
    });
    const res = await nodeHttpFetch(`${base}/v1/things`, {
      method: "POST",
      headers: { "Content-Type": "application/json", Authorization: "Bearer k" },
      body: '{"é":1}',
    });
    expect(seen).toEqual({ method: "POST", type: "application/json", length: String(Buffer.byteLength('{"é":1}')), auth: "Bearer k", body: '{"é":1}' });
    expect(res.status).toBe(201);
    expect(res.statusText).toBe("Made");
    expect(res.ok).toBe(true);
    expect(res.headers.get("x-one")).toBe("1");
    expect(await res.json()).toEqual({ ok: true });
  });

  it("takes headers as a Headers object and answers a 204 and a HEAD with no body", async () => {
    const base = await serve((req, res) => {
      res.writeHead(req.method === "HEAD" ? 200 : 204, { "x-got": req.headers["x-want"] ?? "none" });
      res.end();
    });
    const empty = await nodeHttpFetch(`${base}/`, { method: "DELETE", headers: new Headers({ "X-Want": "yes" }) });
    expect(empty.status).toBe(204);
    expect(empty.body).toBeNull();
    expect(empty.headers.get("x-got")).toBe("yes");
    const head = await nodeHttpFetch(`${base}/`, { method: "HEAD" });
    expect(head.status).toBe(200);
    expect(head.body).toBeNull();
  });

  it("hands each chunk to the reader as it arrives, not when the body ends", async () => {
    let next: (() => void) | undefined;
    const base = await serve((_req, res) => {
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.write("data: one\n\n");
      next = () => res.end("data: two\n\n");
    });
    const res = await nodeHttpFetch(`${base}/stream`, { method: "POST", body: "{}" });
    const reader = res.body!.getReader();
    const first = await reader.read();
    expect(new TextDecoder().decode(first.value)).toBe("data: one\n\n");
    next!();
    const second = await reader.read();
    expect(new TextDecoder().decode(second.value)).toBe("data: two\n\n");
    expect((await reader.read()).done).toBe(true);
  });

  it("rejects an already aborted signal, and a timeout as fetch does (TimeoutError, which backends call a timeout)", async () => {
    let arrived = 0;
    const base = await serve(() => arrived++); // never answers
    const aborted = new AbortController();
    aborted.abort();
    await expect(nodeHttpFetch(`${base}/`, { signal: aborted.signal })).rejects.toMatchObject({ name: "AbortError" });
    const err = await nodeHttpFetch(`${base}/`, { method: "POST", body: "{}", signal: AbortSignal.timeout(50) }).catch((e: unknown) => e);
    expect((err as Error).name).toBe("TimeoutError");
    expect(errorFromFetchFailure("vllm", base, err).code).toBe("timeout");
    expect(arrived).toBe(1);
  });

  it("an abort mid-body errors the reader with the signal's reason and closes the connection", async () => {
    const { base, closed } = await serveOpenBody();
    const controller = new AbortController();
    const res = await nodeHttpFetch(`${base}/`, { signal: controller.signal });
    const reader = res.body!.getReader();
    await reader.read();
    controller.abort(new Error("client went away"));
    await expect(reader.read()).rejects.toThrow("client went away");
    await closed;
  });

  it("a refused connection rejects as fetch does, with the socket's code as the cause", async () => {
    const base = await serve(() => undefined);
    server!.close();
    await once(server!, "close");
    const err = await nodeHttpFetch(`${base}/`, {}).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TypeError);
    expect((err as Error).message).toBe("fetch failed");
    expect(((err as Error).cause as { code?: string }).code).toBe("ECONNREFUSED");
    const mapped = errorFromFetchFailure("vllm", base, err);
    expect(mapped.code).toBe("no_capacity");
    expect(mapped.message).toContain("ECONNREFUSED");
  });

  it("a body cut short errors its reader (a backend that crashed mid-stream)", async () => {
    const base = await serve((_req, res) => {
      res.writeHead(200, { "content-length": "100" });
      res.write("partial");
      setImmediate(() => res.socket!.destroy());
    });
    const res = await nodeHttpFetch(`${base}/`, {});
    await expect(readAll(res)).rejects.toThrow("terminated");
  });

  it("a reader that cancels closes the connection", async () => {
    const { base, closed } = await serveOpenBody();
    const res = await nodeHttpFetch(`${base}/`, {});
    const reader = res.body!.getReader();
    await reader.read();
    await reader.cancel();
    await closed;
  });

  it("keeps the connection alive between requests, and sends again on a new one when the server dropped the kept one", async () => {
    const sockets: Socket[] = [];
    let dropNext = false;
    const base = await serve((req, res) => {
      const socket = req.socket;
      if (!sockets.includes(socket)) sockets.push(socket);
      if (dropNext) {
        dropNext = false;
        socket.destroy(); // as a server closing an idle connection at the moment the request arrives
        return;
      }
      res.end("ok");
    });
    expect(await readAll(await nodeHttpFetch(`${base}/a`, {}))).toBe("ok");
    expect(await readAll(await nodeHttpFetch(`${base}/b`, {}))).toBe("ok");
    expect(sockets).toHaveLength(1);
    dropNext = true;
    expect(await readAll(await nodeHttpFetch(`${base}/c`, { method: "POST", body: "{}" }))).toBe("ok");
    expect(sockets).toHaveLength(2);
  });

  it("keeps an idle connection as long as its server announced, less a second; 4 s when it announced nothing", async () => {
    /** A server that announces an idle timeout of `announceSeconds` (none when 0), counting its connections. */
    const counted = async (announceSeconds: number) => {
      const connections: Socket[] = [];
      const s = createServer((req, res) => {
        if (!connections.includes(req.socket)) connections.push(req.socket);
        res.end("ok");
      });
      // Node announces `Keep-Alive: timeout=N` from keepAliveTimeout; with none it announces nothing and keeps on.
      s.keepAliveTimeout = announceSeconds * 1000;
      s.listen(0, "127.0.0.1");
      await once(s, "listening");
      return { s, connections, base: `http://127.0.0.1:${(s.address() as AddressInfo).port}` };
    };
    const announcing = await counted(7);
    const silent = await counted(0);
    try {
      for (const { base } of [announcing, silent]) expect(await readAll(await nodeHttpFetch(`${base}/a`, {}))).toBe("ok");
      // Past the 4 s kept for a silent server, within the 6 s kept for one that announced 7.
      await new Promise((resolve) => setTimeout(resolve, 4_500));
      for (const { base } of [announcing, silent]) expect(await readAll(await nodeHttpFetch(`${base}/b`, {}))).toBe("ok");
      expect(announcing.connections).toHaveLength(1);
      expect(silent.connections).toHaveLength(2);
    } finally {
      for (const { s } of [announcing, silent]) {
        s.closeAllConnections();
        await new Promise((resolve) => s.close(resolve));
      }
    }
  });

  it("reads the announced idle timeout as undici does: less a second, at most ten minutes, not reused under two seconds", () => {
    expect(keptAliveIdleMs(undefined)).toBe(4_000);
    expect(keptAliveIdleMs("max=100")).toBe(4_000);
    expect(keptAliveIdleMs("timeout=60")).toBe(59_000);
    expect(keptAliveIdleMs("max=1000, timeout=5")).toBe(4_000);
    expect(keptAliveIdleMs("Timeout = 30")).toBe(29_000);
    expect(keptAliveIdleMs("timeout=86400")).toBe(600_000);
    expect(keptAliveIdleMs("timeout=1")).toBe(0);
    expect(keptAliveIdleMs("timeout=0")).toBe(0);
    expect(keptAliveIdleMs("timeout=abc")).toBe(4_000);
  });

  it("stops reading the socket while the reader is behind, and reads on when it catches up", async () => {
    const total = 32 * 1024 * 1024;
    const chunk = Buffer.alloc(64 * 1024, 97);
    let written = 0;
    let blocked: () => void;
    const firstBlock = new Promise<void>((resolve) => (blocked = resolve));
    const base = await serve((_req, res) => {
      res.writeHead(200, { "content-length": String(total) });
      const pump = () => {
        while (written < total) {
          written += chunk.length;
          if (!res.write(chunk)) {
            blocked();
            res.once("drain", pump);
            return;
          }
        }
        res.end();
      };
      pump();
    });
    const res = await nodeHttpFetch(`${base}/big`, {});
    const reader = res.body!.getReader();
    await firstBlock;
    // The reader has taken nothing yet: the server stays stopped with most of the body unsent.
    await new Promise((r) => setTimeout(r, 200));
    expect(written).toBeLessThan(total / 2);
    let read = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      read += value.byteLength;
    }
    expect(read).toBe(total);
  });

  it("refuses what it does not send: another protocol, a stream body, a malformed URL", async () => {
    await expect(nodeHttpFetch("ftp://127.0.0.1/", {})).rejects.toThrow(/unsupported protocol ftp:/);
    await expect(nodeHttpFetch("http://127.0.0.1:1/", { method: "POST", body: new Blob(["x"]) })).rejects.toThrow(/string or byte bodies/);
    await expect(nodeHttpFetch("not a url", {})).rejects.toBeInstanceOf(TypeError);
  });
});
