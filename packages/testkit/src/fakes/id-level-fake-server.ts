import { FakeHttpServer, type RecordedRequest, type RouteHandler, sendJson } from "./fake-http-server.js";
import type { IdLevelModel } from "./id-level-model.js";

/**
 * What the id-level fakes of OpenAI-compatible servers (vLLM, SGLang) share: one real model behind a FakeHttpServer,
 * its URL, the requests it recorded, and the two routes every such server answers alike: `GET /health` (200, empty)
 * and `GET /v1/models` (the one model, `owned_by` the server's name, `max_model_len` its context). A subclass routes
 * everything else; these two are matched first.
 */
export abstract class IdLevelFakeServer {
  readonly http: FakeHttpServer;

  protected constructor(
    protected readonly model: IdLevelModel,
    /** The server's name in `/v1/models`' `owned_by`. */
    private readonly ownedBy: string,
  ) {
    this.http = new FakeHttpServer((method, path) => this.sharedRoute(method, path) ?? this.route(method, path));
  }

  get url(): string {
    return this.http.url;
  }

  get requests(): RecordedRequest[] {
    return this.http.requests;
  }

  close(): Promise<void> {
    return this.http.close();
  }

  /** Starts listening on a free port; a subclass's `start` returns this. */
  protected async listen(): Promise<this> {
    await this.http.listen();
    return this;
  }

  /** The server's own routes, beyond `/health` and `/v1/models`. */
  protected abstract route(method: string, path: string): RouteHandler | undefined;

  private sharedRoute(method: string, path: string): RouteHandler | undefined {
    if (method === "GET" && path === "/health") {
      return (_req, res) => {
        res.writeHead(200).end();
      };
    }
    if (method === "GET" && path === "/v1/models") {
      return (_req, res) =>
        sendJson(res, 200, { object: "list", data: [{ id: this.model.modelId, object: "model", created: 0, owned_by: this.ownedBy, root: this.model.modelId, max_model_len: this.model.contextSize }] });
    }
    return undefined;
  }
}
