import { useEffect, useState } from "preact/hooks";
import type { DashboardSessionView } from "@tessera/protocol";
import { api, describeError } from "../api.js";
import { ErrorNote } from "../components/status.js";
import { loginLinkToken } from "../routes.js";
import { useSession } from "../session.js";

/** Opens a `tessera dashboard login` link: trades its one-time token for an operator session, then shows My nodes. */
export function LoginLinkPage() {
  const { refresh } = useSession();
  const [error, setError] = useState<string>();
  useEffect(() => {
    const token = loginLinkToken();
    // The token leaves the address bar at once: it is spent either way.
    history.replaceState(null, "", "#/signin");
    api<DashboardSessionView>("POST", "/dashboard/api/session", { login_link: token }).then(
      async (session) => {
        await refresh();
        location.hash = session.kind === "admin" ? "#/admin" : "#/mynodes";
      },
      (err: unknown) => setError(describeError(err)),
    );
  }, []);
  return (
    <section class="narrow">
      <h1>Signing in with a login link</h1>
      {error ? <ErrorNote message={error} /> : <p aria-busy="true">Checking the login link…</p>}
      {error ? <p class="note">Make a new link on the node's machine with <code>tessera dashboard login</code>.</p> : null}
    </section>
  );
}
