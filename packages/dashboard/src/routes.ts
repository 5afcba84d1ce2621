/** The pages, in the order the navigation shows them; the location hash picks one (`#/nodes`). */
export const PAGES = [
  { path: "/", title: "Network" },
  { path: "/models", title: "Models" },
  { path: "/nodes", title: "Nodes" },
  { path: "/playground", title: "Playground" },
  { path: "/jobs", title: "Jobs" },
  { path: "/keys", title: "API keys" },
  { path: "/billing", title: "Billing" },
  { path: "/mynodes", title: "My nodes" },
  { path: "/admin", title: "Admin" },
] as const;

export type PagePath = (typeof PAGES)[number]["path"] | "/signin" | "/login";

/** `#/login/<token>` is a login link from `tessera dashboard login`: the login page, with the token. */
export function currentPath(): PagePath {
  const path = location.hash.replace(/^#/, "") || "/";
  if (path.startsWith("/login/")) return "/login";
  return path === "/signin" || PAGES.some((p) => p.path === path) ? (path as PagePath) : "/";
}

export function loginLinkToken(): string {
  return decodeURIComponent(location.hash.replace(/^#\/login\//, ""));
}
