import { modelBlobPath, type OllamaShowResponse } from "./show-template.js";

/**
 * The identity of the GGUF file Ollama serves a model from (design.md "Model file identity"): the SHA-256 of its
 * content, the same value the embedded engine reports for the same file (`BackendModel.sha256`).
 *
 * Where it is read, at Ollama's wire format:
 * - `POST /api/show` `modelfile`: its `FROM` line is the model layer's blob path (server/images.go `Model.String`, the
 *   `model` command with `ModelPath`; `ModelPath` is `manifest.BlobsPath(layer.Digest)` of the layer whose media type
 *   is `application/vnd.ollama.image.model`), `<models>/blobs/sha256-<64 hex>`. A blob's name is the SHA-256 of its
 *   content: Ollama checks it on every pull (`verifying sha256 digest`) and on `POST /api/blobs/:digest`.
 * - NOT `GET /api/tags` `digest`: that is the SHA-256 of the model's manifest JSON (manifest/manifest.go
 *   `ParseNamedManifest` hashes the manifest file), which also covers the template, parameters and license layers and
 *   differs from the GGUF's hash. It is used here only to notice that a name now points at another manifest.
 *
 * Anything else (no Modelfile, a `FROM` that is no blob path — MLX models name themselves —, upper-case or short hex, a
 * body that is not an object) gives no identity rather than an error: the model is still served, without `sha256`.
 */
export function modelFileSha256(show: unknown): string | undefined {
  if (typeof show !== "object" || show === null || Array.isArray(show)) return undefined;
  const path = modelBlobPath((show as OllamaShowResponse).modelfile);
  const hex = path === undefined ? undefined : /sha256[-:]([0-9a-f]{64})$/.exec(path)?.[1];
  return hex;
}

export interface OllamaModelFilesOptions {
  /** `POST /api/show {model}` (not verbose: the Modelfile is all that is read); throws on a failed request. */
  show(model: string, signal?: AbortSignal): Promise<unknown>;
  /** A name now points at another manifest than when it was last read (pulled again outside this node). */
  onReplaced?(model: string): void;
}

export interface OllamaModelFiles {
  /**
   * The model's file SHA-256, or undefined when Ollama does not name a GGUF blob for it. `manifestDigest` is
   * `/api/tags`' `digest`: `/api/show` is asked once per manifest, again only when the name points at another one (a
   * pull outside this node). A failed `/api/show` (down, 404, not JSON) gives undefined and is asked again next time.
   */
  sha256Of(model: string, manifestDigest: unknown, signal?: AbortSignal): Promise<string | undefined>;
  /** Forget a model (after a pull or delete through this node). */
  forget(model: string): void;
}

export function createOllamaModelFiles(options: OllamaModelFilesOptions): OllamaModelFiles {
  const known = new Map<string, { manifest: string; sha256: string | undefined }>();
  return {
    async sha256Of(model, manifestDigest, signal) {
      const manifest = typeof manifestDigest === "string" && manifestDigest.length > 0 ? manifestDigest : undefined;
      const cached = known.get(model);
      if (cached && manifest !== undefined && cached.manifest === manifest) return cached.sha256;
      if (cached && manifest !== undefined) options.onReplaced?.(model);
      let show: unknown;
      try {
        show = await options.show(model, signal);
      } catch {
        known.delete(model);
        return undefined;
      }
      const sha256 = modelFileSha256(show);
      // Without a manifest digest there is nothing to notice a change by: asked again every time.
      if (manifest !== undefined) known.set(model, { manifest, sha256 });
      else known.delete(model);
      return sha256;
    },
    forget(model) {
      known.delete(model);
    },
  };
}
