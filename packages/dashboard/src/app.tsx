import { useEffect, useState } from "preact/hooks";
import type { DashboardSessionView } from "@tessera/protocol";
import { api, describeError, setCsrfToken } from "./api.js";
import { SessionContext } from "./session.js";
import { PAGES, type PagePath, currentPath } from "./routes.js";
import { NetworkPage } from "./pages/network.js";
import { ModelsPage } from "./pages/models.js";
import { NodesPage } from "./pages/nodes.js";
import { PlaygroundPage } from "./pages/playground.js";
import { JobsPage } from "./pages/jobs.js";
import { KeysPage } from "./pages/keys.js";
import { BillingPage } from "./pages/billing.js";
import { SignInPage } from "./pages/sign-in.js";
import { LoginLinkPage } from "./pages/login-link.js";
import { MyNodesPage } from "./pages/my-nodes.js";
import { AdminPage } from "./pages/admin.js";

const PAGE_VIEWS: Record<PagePath, () => preact.JSX.Element> = {
  "/": NetworkPage,
  "/models": ModelsPage,
  "/nodes": NodesPage,
  "/playground": PlaygroundPage,
  "/jobs": JobsPage,
  "/keys": KeysPage,
  "/billing": BillingPage,
  "/mynodes": MyNodesPage,
  "/admin": AdminPage,
  "/signin": SignInPage,
  "/login": LoginLinkPage,
};

export function App() {
  const [path, setPath] = useState<PagePath>(currentPath());
  // A second login link opened over the first is a new page, not the same one re-rendered.
  const [hash, setHash] = useState(location.hash);
  const [session, setSession] = useState<DashboardSessionView | undefined>();
  const [problem, setProblem] = useState<string | undefined>();

  const refresh = async () => {
    try {
      const view = await api<DashboardSessionView>("GET", "/dashboard/api/session");
      setCsrfToken(view.csrf_token);
      setSession(view);
      setProblem(undefined);
    } catch (err) {
      setProblem(describeError(err));
    }
  };

  useEffect(() => {
    void refresh();
    const onHash = () => {
      setPath(currentPath());
      setHash(location.hash);
    };
    addEventListener("hashchange", onHash);
    return () => removeEventListener("hashchange", onHash);
  }, []);

  useEffect(() => {
    const title = path === "/signin" || path === "/login" ? "Sign in" : PAGES.find((p) => p.path === path)?.title;
    document.title = `${title} · Tessera`;
  }, [path]);

  const signOut = async () => {
    try {
      await api("DELETE", "/dashboard/api/session");
    } finally {
      await refresh();
    }
  };

  const Page = PAGE_VIEWS[path];
  return (
    <SessionContext.Provider value={{ session: session ?? { signed_in: false, open: false }, refresh }}>
      <a class="skip" href="#main">Skip to content</a>
      <header class="top">
        <a class="brand" href="#/">Tessera</a>
        <nav aria-label="Pages">
          <ul>
            {PAGES.map((p) => (
              <li key={p.path}>
                <a href={`#${p.path}`} aria-current={p.path === path ? "page" : undefined}>{p.title}</a>
              </li>
            ))}
          </ul>
        </nav>
        <div class="who">
          {session?.signed_in ? (
            <>
              <span data-testid="signed-in-as">{session.kind === "guest" ? "Guest" : session.kind === "admin" ? "Owner" : session.kind === "operator" ? `Operator ${session.operator?.id.slice(0, 8)}…` : `Key ${session.key?.name}`}</span>
              <button type="button" onClick={() => void signOut()}>Sign out</button>
            </>
          ) : (
            <a class="button" href="#/signin">Sign in</a>
          )}
        </div>
      </header>
      <main id="main" tabIndex={-1}>
        {problem ? <p role="alert" class="error">{problem}</p> : null}
        {session ? <Page key={path === "/login" ? hash : path} /> : <p aria-busy="true">Loading…</p>}
      </main>
    </SessionContext.Provider>
  );
}
