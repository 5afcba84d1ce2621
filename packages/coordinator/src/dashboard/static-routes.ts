import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { extname, join, relative, sep } from "node:path";
import type { FastifyInstance, FastifyReply } from "fastify";
import { TesseraError } from "@tessera/protocol";

const CONTENT_TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".json": "application/json; charset=utf-8",
  ".txt": "text/plain; charset=utf-8",
  ".woff2": "font/woff2",
};

/**
 * The page may load only what this coordinator serves and talk only to it; nothing may frame it. Inline styles are
 * allowed because the chart library sizes its canvas with them (no inline script is).
 */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
  "form-action 'self'",
].join("; ");

interface StaticFile {
  body: Buffer;
  type: string;
}

/** Every file of the build, read once: a path outside it can never be asked for, since only these names exist. */
function readBuild(dir: string): Map<string, StaticFile> {
  const files = new Map<string, StaticFile>();
  const walk = (at: string) => {
    for (const name of readdirSync(at)) {
      const path = join(at, name);
      if (statSync(path).isDirectory()) walk(path);
      else files.set(relative(dir, path).split(sep).join("/"), { body: readFileSync(path), type: CONTENT_TYPES[extname(name)] ?? "application/octet-stream" });
    }
  };
  walk(dir);
  return files;
}

function send(reply: FastifyReply, file: StaticFile, cache: string): FastifyReply {
  return reply
    .type(file.type)
    .header("cache-control", cache)
    .header("x-content-type-options", "nosniff")
    .header("referrer-policy", "no-referrer")
    .header("content-security-policy", CONTENT_SECURITY_POLICY)
    .send(file.body);
}

/**
 * The built dashboard at `/`: `index.html` is revalidated on every load (`no-cache`), files under `assets/` carry a
 * content hash in their names and are cached for a year (`immutable`). Without a build, `/` says how to make one.
 */
export function staticRoutes(app: FastifyInstance, dir: string | undefined): void {
  let files: Map<string, StaticFile> | undefined;
  const build = () => {
    if (files) return files;
    if (dir === undefined || !existsSync(join(dir, "index.html"))) {
      throw new TesseraError("not_found", "the dashboard is not built: run `npm run build` (or `npm run build -w @tessera/dashboard`) and restart");
    }
    files = readBuild(dir);
    return files;
  };

  app.get("/", async (_request, reply) => send(reply, build().get("index.html")!, "no-cache"));

  app.get<{ Params: { "*": string } }>("/assets/*", async (request, reply) => {
    const file = build().get(`assets/${request.params["*"]}`);
    if (!file) throw new TesseraError("not_found", `no dashboard file ${request.url.split("?")[0]}`);
    return send(reply, file, "public, max-age=31536000, immutable");
  });

  app.get("/favicon.svg", async (_request, reply) => {
    const file = build().get("favicon.svg");
    if (!file) throw new TesseraError("not_found", "no favicon in this build");
    return send(reply, file, "public, max-age=86400");
  });
}
