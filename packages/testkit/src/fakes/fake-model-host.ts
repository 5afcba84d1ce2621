import { createHash } from "node:crypto";
import { type IncomingMessage, type ServerResponse, createServer } from "node:http";
import type { AddressInfo, Socket } from "node:net";

/**
 * A file host and a Hugging Face hub in one local HTTP server, at their wire formats, for `tessera model install`:
 * - `GET /files/<name>`: the bytes, with `Accept-Ranges: bytes`, a strong `ETag` (the sha256 in quotes), `Range` →
 *   206 + `Content-Range`, `If-Range` that no longer matches → 200 with the whole file, unsatisfiable range → 416.
 * - `GET /api/models/<owner>/<repo>/tree/<rev>?recursive=true`: the hub's listing
 *   `[{type, oid, size, path, lfs: {oid: sha256, size, pointerSize}}]`; unknown repo → 401 as the hub answers.
 * - `GET /<owner>/<repo>/resolve/<rev>/<path>`: 302 to `/files/…` with `x-linked-etag` and `x-linked-size`, as the hub
 *   redirects to its CDN.
 * Faults: `dropAfterBytes` closes the socket mid-body (once per listed request count), `bytesPerTick` + `tickMs`
 * pace the body so progress is visible, `publishedSha256` / `publishedSize` override what the listing publishes
 * (mismatch tests).
 */
export interface FakeHostedFile {
  /** Path under the repo (`sub/x.gguf`) or under /files. */
  path: string;
  bytes: Buffer;
  /** What the hub listing says the sha256 is; default the real one. */
  publishedSha256?: string;
  /** What the hub listing says the size is; default the real one (a size-mismatch test). */
  publishedSize?: number;
}

export interface FakeModelHostOptions {
  /** `owner/repo` → files in it. */
  repos?: Record<string, FakeHostedFile[]>;
  /** Plain files at `/files/<path>`. */
  files?: FakeHostedFile[];
  /** Close the connection after this many body bytes, on the first `dropTimes` file responses (default 1). */
  dropAfterBytes?: number;
  dropTimes?: number;
  /** Body pacing: this many bytes every `tickMs` (default: all at once). */
  bytesPerTick?: number;
  tickMs?: number;
  /** Answer file requests ignoring Range (a server without range support). */
  ignoreRange?: boolean;
}

export interface FakeModelHostRequest {
  method: string;
  url: string;
  range?: string;
  ifRange?: string;
  authorization?: string;
  status: number;
}

export interface FakeModelHost {
  url: string;
  requests: FakeModelHostRequest[];
  /** Replace a file's bytes (its ETag changes): tests of If-Range after the file changed. */
  replace(path: string, bytes: Buffer): void;
  close(): Promise<void>;
}

function sha256(bytes: Buffer): string {
  return createHash("sha256").update(bytes).digest("hex");
}

export async function startFakeModelHost(options: FakeModelHostOptions): Promise<FakeModelHost> {
  const files = new Map<string, FakeHostedFile>();
  for (const f of options.files ?? []) files.set(f.path, f);
  for (const [repo, list] of Object.entries(options.repos ?? {})) for (const f of list) files.set(`${repo}/${f.path}`, f);
  const requests: FakeModelHostRequest[] = [];
  let drops = options.dropTimes ?? 1;
  const sockets = new Set<Socket>();

  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? "/", "http://x");
    const log: FakeModelHostRequest = {
      method: req.method ?? "GET",
      url: url.pathname + url.search,
      ...(req.headers.range ? { range: req.headers.range } : {}),
      ...(typeof req.headers["if-range"] === "string" ? { ifRange: req.headers["if-range"] } : {}),
      ...(req.headers.authorization ? { authorization: req.headers.authorization } : {}),
      status: 0,
    };
    requests.push(log);
    const send = (status: number, headers: Record<string, string | number>, body?: string | Buffer) => {
      log.status = status;
      res.writeHead(status, headers);
      res.end(body);
    };
    const tree = /^\/api\/models\/([^/]+\/[^/]+)\/tree\/([^/?]+)$/.exec(url.pathname);
    if (tree) {
      const repo = decodeURIComponent(tree[1]!);
      const list = options.repos?.[repo];
      if (!list) return send(401, { "content-type": "application/json" }, JSON.stringify({ error: "Repository Not Found" }));
      const body = list.map((f) => ({
        type: "file",
        oid: createHash("sha1").update(f.bytes).digest("hex"),
        size: f.publishedSize ?? f.bytes.length,
        path: f.path,
        lfs: { oid: f.publishedSha256 ?? sha256(f.bytes), size: f.publishedSize ?? f.bytes.length, pointerSize: 134 },
      }));
      return send(200, { "content-type": "application/json" }, JSON.stringify(body));
    }
    const resolve = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(url.pathname);
    if (resolve) {
      const key = `${decodeURIComponent(resolve[1]!)}/${resolve[3]!.split("/").map(decodeURIComponent).join("/")}`;
      const file = files.get(key);
      if (!file) return send(404, { "content-type": "text/plain" }, "Entry not found");
      return send(302, { location: `/files/${key}`, "x-linked-etag": `"${sha256(file.bytes)}"`, "x-linked-size": file.bytes.length });
    }
    if (url.pathname.startsWith("/files/")) {
      const file = files.get(url.pathname.slice("/files/".length).split("/").map(decodeURIComponent).join("/"));
      if (!file) return send(404, { "content-type": "text/plain" }, "not found");
      return serveFile(req, res, file.bytes, log);
    }
    send(404, { "content-type": "text/plain" }, "not found");
  });

  function serveFile(req: IncomingMessage, res: ServerResponse, bytes: Buffer, log: FakeModelHostRequest): void {
    const etag = `"${sha256(bytes)}"`;
    let start = 0;
    let status = 200;
    const headers: Record<string, string | number> = { "content-type": "application/octet-stream", "accept-ranges": "bytes", etag };
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? "");
    const ifRange = req.headers["if-range"];
    if (range && !options.ignoreRange && (ifRange === undefined || ifRange === etag)) {
      start = Number(range[1]);
      if (start >= bytes.length) {
        log.status = 416;
        res.writeHead(416, { "content-range": `bytes */${bytes.length}` });
        res.end();
        return;
      }
      status = 206;
      headers["content-range"] = `bytes ${start}-${bytes.length - 1}/${bytes.length}`;
    }
    headers["content-length"] = bytes.length - start;
    log.status = status;
    res.writeHead(status, headers);
    const body = bytes.subarray(start);
    const drop = options.dropAfterBytes !== undefined && drops > 0 ? (drops--, options.dropAfterBytes) : undefined;
    const step = options.bytesPerTick ?? body.length;
    let sent = 0;
    const tick = () => {
      if (res.destroyed) return;
      let end = Math.min(body.length, sent + step);
      if (drop !== undefined && end >= drop) {
        end = Math.min(end, drop);
        res.write(body.subarray(sent, end), () => res.socket?.destroy());
        return;
      }
      res.write(body.subarray(sent, end));
      sent = end;
      if (sent >= body.length) res.end();
      else setTimeout(tick, options.tickMs ?? 0);
    };
    tick();
  }

  server.on("connection", (s: Socket) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    replace(path, bytes) {
      const f = files.get(path);
      if (!f) throw new Error(`no hosted file ${path}`);
      f.bytes = bytes;
    },
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}
