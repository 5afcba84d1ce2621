/** The pages, in the order the navigation shows them; the location hash picks one (`#/nodes`). */
export const PAGES = [
  { path: "/", title: "Network" },
  { path: "/models", title: "Models" },
  { path: "/nodes", title: "Nodes" },
  { path: "/playground", title: "Playground" },
  { path: "/jobs", title: "Jobs" },
  { path: "/keys", title: "API keys" },
  { path: "/billing", title: "Billing" },
] as const;

export type PagePath = (typeof PAGES)[number]["path"] | "/signin";

export function currentPath(): PagePath {
  const path = location.hash.replace(/^#/, "") || "/";
  return path === "/signin" || PAGES.some((p) => p.path === path) ? (path as PagePath) : "/";
}
