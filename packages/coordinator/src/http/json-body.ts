import type { FastifyInstance } from "fastify";
import { TesseraError } from "@tessera/protocol";
import { jsonDepthExceeds, MAX_JSON_DEPTH } from "./json-depth.js";

declare module "fastify" {
  interface FastifyRequest {
    /** The body exactly as received: signed node requests are verified over these bytes. */
    rawBody?: string;
  }
}

/**
 * JSON bodies are parsed by hand so the raw text stays available for signature checks. The body arrives only after
 * the request guard has checked the credentials in its headers and within the route's size cap; here a signed
 * request's signature is verified over the raw text, then the text is scanned for nesting deeper than
 * MAX_JSON_DEPTH (linearly, without recursing), and only then parsed.
 */
export function installJsonBody(app: FastifyInstance): void {
  app.removeContentTypeParser("application/json");
  app.addContentTypeParser("application/json", { parseAs: "string" }, (request, body, done) => {
    const text = body as string;
    request.rawBody = text;
    try {
      request.verifySignature?.(text);
    } catch (err) {
      return done(err as Error, undefined);
    }
    if (text.length === 0) return done(null, undefined);
    const at = jsonDepthExceeds(text, MAX_JSON_DEPTH);
    if (at >= 0) {
      return done(new TesseraError("bad_request", `request body nests deeper than ${MAX_JSON_DEPTH} levels (at character ${at})`), undefined);
    }
    try {
      done(null, JSON.parse(text));
    } catch {
      done(new TesseraError("bad_request", "request body is not valid JSON"), undefined);
    }
  });
}
