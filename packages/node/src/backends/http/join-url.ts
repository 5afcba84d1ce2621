/** `joinUrl("http://h:8000/", "/v1/models")` → `http://h:8000/v1/models`; keeps any path prefix of the base. */
export function joinUrl(baseURL: string, path: string): string {
  return baseURL.replace(/\/+$/, "") + (path.startsWith("/") ? path : `/${path}`);
}
