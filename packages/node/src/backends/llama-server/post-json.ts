import { errorFromFetchFailure, errorFromResponse } from "../http/backend-error.js";
import { joinUrl } from "../http/join-url.js";

/** `POST <baseURL><path>` of a JSON body to llama-server, its JSON answer back; failures as the backends name them. */
export function createLlamaServerPost(options: { baseURL: string; fetch: typeof globalThis.fetch; headers: Record<string, string>; kind: string }) {
  return async <T = unknown>(path: string, body: unknown): Promise<T> => {
    const url = joinUrl(options.baseURL, path);
    let res: Response;
    try {
      res = await options.fetch(url, { method: "POST", headers: options.headers, body: JSON.stringify(body) });
    } catch (err) {
      throw errorFromFetchFailure(options.kind, url, err);
    }
    if (!res.ok) throw await errorFromResponse(options.kind, res);
    return (await res.json()) as T;
  };
}
