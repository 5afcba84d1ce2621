import { Transform } from "node:stream";
import type { FastifyInstance } from "fastify";
import { TesseraError } from "@tessera/protocol";
import { JsonDepthScanner, MAX_JSON_DEPTH } from "./json-depth.js";

declare module "fastify" {
  interface FastifyRequest {
    /** The body exactly as received: signed node requests are verified over these bytes. */
    rawBody?: string;
  }
}

/** The error a body nested deeper than MAX_JSON_DEPTH is refused with. */
function tooDeep(offset: number): TesseraError {
  return new TesseraError("bad_request", `request body nests deeper than ${MAX_JSON_DEPTH} levels (at byte ${offset})`);
}

/**
 * JSON bodies are parsed by hand so the raw text stays available for signature checks. The body is read only after
 * the request guard has checked the credentials in its headers, within the route's size cap, and through a
 * `JsonDepthScanner` that refuses nesting deeper than MAX_JSON_DEPTH as the bytes arrive (a linear scan that never
 * recurses). Then a signed request's signature is verified over the raw text, and only then is the text parsed.
 */
export function installJsonBody(app: FastifyInstance): void {
  app.addHook("preParsing", async (_request, _reply, payload) => {
    const scanner = new JsonDepthScanner(MAX_JSON_DEPTH);
    const guarded = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        const at = scanner.push(chunk);
        if (at < 0) return callback(null, chunk);
        // Answered at once; the rest of the upload is left unread (unread-body.ts).
        callback(tooDeep(at));
      },
    });
    // pipe() does not pass errors on: a client that aborts mid-body must end the read, not leave it waiting.
    // (Not pipeline(): on a too-deep body it would destroy the request's socket before the 400 is written.)
    payload.once("error", (err) => guarded.destroy(err));
    payload.once("aborted", () => guarded.destroy(new TesseraError("bad_request", "request body was cut off")));
    // Fastify listens while it reads the body; a body it never reads (a GET's, an unsupported type's) must not
    // turn a refusal here into an unhandled error.
    guarded.on("error", () => {});
    return payload.pipe(guarded);
  });
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
    try {
      done(null, JSON.parse(text));
    } catch {
      done(new TesseraError("bad_request", "request body is not valid JSON"), undefined);
    }
  });
}
