export { isModelReference, parseModelReference, type ModelReference } from "./model-reference.js";
export { resolveReference, type ResolvedDownload, type HubOptions } from "./hub-resolve.js";
export { downloadFile, partPaths, type DownloadOptions, type DownloadProgress, type DownloadResult } from "./download-file.js";
export { checkGgufHead, GGUF_MAGIC } from "./gguf-magic.js";
export { installGguf, parseSha256Flag, type InstallGgufOptions, type InstalledGguf } from "./install-gguf.js";
export { DEFAULT_HF_ENDPOINT } from "./hub-endpoint.js";
