import { useState } from "preact/hooks";
import type { DashboardSessionView } from "@tessera/protocol";
import { api, describeError } from "../api.js";
import { ErrorNote } from "../components/status.js";
import { useSession } from "../session.js";

export function SignInPage() {
  const { session, refresh } = useSession();
  const [key, setKey] = useState("");
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);

  const signIn = async (body: { api_key: string } | { guest: true }) => {
    setBusy(true);
    setError(undefined);
    try {
      await api<DashboardSessionView>("POST", "/dashboard/api/session", body);
      setKey("");
      await refresh();
      location.hash = "#/";
    } catch (err) {
      setError(describeError(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <section aria-labelledby="signin-title" class="narrow">
      <h1 id="signin-title">Sign in</h1>
      {session.signed_in ? <p>You are signed in{session.key ? ` with the key "${session.key.name}"` : " as a guest"}. Signing in again replaces that session.</p> : null}
      <form onSubmit={(e) => { e.preventDefault(); void signIn({ api_key: key }); }}>
        <label>
          API key
          <input type="password" autoComplete="off" value={key} onInput={(e) => setKey((e.target as HTMLInputElement).value)} required placeholder="tsk_…" aria-describedby="key-help" />
        </label>
        <p id="key-help" class="note">The key stays on the coordinator for this session; the page never stores it.</p>
        <ErrorNote message={error} />
        <div class="actions">
          <button type="submit" disabled={busy || !key.trim()}>Sign in</button>
          {session.open ? <button type="button" disabled={busy} onClick={() => void signIn({ guest: true })}>Continue as guest</button> : null}
        </div>
      </form>
    </section>
  );
}
