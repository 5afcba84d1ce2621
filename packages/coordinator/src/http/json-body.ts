import type { FastifyInstance } from "fastify";
import { TesseraError } from "@tessera/protocol";

declare module "fastify" {
  interface FastifyRequest {
    /** The body exactly as received: signed node requests are verified over these bytes. */
    rawBody?: string;
  }
}

/** JSON bodies are parsed by hand so the raw text stays available for signature checks. */
export function installJsonBody(app: FastifyInstance): void {
  app.removeContentTypeParser("application/json");
  app.addContentTypeParser("application/json", { parseAs: "string" }, (request, body, done) => {
    const text = body as string;
    request.rawBody = text;
    if (text.length === 0) return done(null, undefined);
    try {
      done(null, JSON.parse(text));
    } catch {
      done(new TesseraError("bad_request", "request body is not valid JSON"), undefined);
    }
  });
}
