import { useEffect, useState } from "preact/hooks";
import type { DashboardKeyCreated, DashboardKeyView } from "@tessera/protocol";
import { api, describeError } from "../api.js";
import { ShownOnce } from "../components/shown-once.js";
import { ErrorNote, NeedsSignIn, TableBox } from "../components/status.js";
import { when } from "../format.js";
import { useSession } from "../session.js";

/**
 * The keys this session may manage: the one it signed in with and those it made. On an open network anyone may
 * make keys here (a key is an identity for credits and limits); a closed network's owner makes them on the CLI.
 */
export function KeysPage() {
  const { session, refresh } = useSession();
  const [keys, setKeys] = useState<DashboardKeyView[]>();
  const [name, setName] = useState("");
  const [created, setCreated] = useState<DashboardKeyCreated>();
  const [error, setError] = useState<string>();

  const load = () => api<{ keys: DashboardKeyView[] }>("GET", "/dashboard/api/keys").then((r) => setKeys(r.keys), (err: unknown) => setError(describeError(err)));
  useEffect(() => {
    if (session.signed_in) void load();
  }, [session.signed_in]);

  if (!session.signed_in) {
    return (
      <section>
        <h1>API keys</h1>
        <NeedsSignIn what="and manage API keys" />
        {session.open ? <p class="note">This network is open: you can also continue as a guest from the sign-in page and make a key there.</p> : null}
      </section>
    );
  }

  const create = async (e: Event) => {
    e.preventDefault();
    setError(undefined);
    try {
      setCreated(await api<DashboardKeyCreated>("POST", "/dashboard/api/keys", { name: name.trim() }));
      setName("");
      await load();
    } catch (err) {
      setError(describeError(err));
    }
  };

  const revoke = async (key: DashboardKeyView) => {
    if (!confirm(`Revoke the key "${key.name}"? Programs using it stop working${key.current ? ", and you are signed out" : ""}.`)) return;
    setError(undefined);
    try {
      await api("DELETE", `/dashboard/api/keys/${encodeURIComponent(key.id)}`);
      if (created?.id === key.id) setCreated(undefined);
      if (key.current) await refresh();
      else await load();
    } catch (err) {
      setError(describeError(err));
    }
  };

  return (
    <section aria-labelledby="keys-title">
      <h1 id="keys-title">API keys</h1>
      <ErrorNote message={error} />
      {session.open ? (
        <form class="inline" onSubmit={(e) => void create(e)}>
          <label>
            New key name
            <input value={name} onInput={(e) => setName((e.target as HTMLInputElement).value)} pattern="[\w.@\-]{1,64}" maxLength={64} required placeholder="laptop" />
          </label>
          <button type="submit">Create key</button>
        </form>
      ) : (
        <p class="note">New keys on this network are made by its owner: <code>tessera coordinator keys create --name NAME</code>.</p>
      )}
      {created ? (
        <ShownOnce heading={<h2>Key "{created.name}" created</h2>} token={created.token} testId="new-token" onStored={() => setCreated(undefined)}>
          <p>This token is shown once; store it now. Use it as <code>Authorization: Bearer &lt;token&gt;</code>.</p>
        </ShownOnce>
      ) : null}
      {keys && keys.length === 0 ? <p>No keys in this session yet.</p> : null}
      {keys && keys.length > 0 ? (
        <TableBox label="Your API keys">
          <thead>
            <tr><th scope="col">Name</th><th scope="col">Created</th><th scope="col">Last used</th><th scope="col">Limit</th><th scope="col">Action</th></tr>
          </thead>
          <tbody>
            {keys.map((k) => (
              <tr key={k.id} data-testid="key-row" data-key-name={k.name}>
                <th scope="row">{k.name}{k.current ? <span class="badge">signed in with it</span> : null}</th>
                <td>{when(k.created_at)}</td>
                <td>{when(k.last_used_at)}</td>
                <td>{k.rate_limit_per_minute}/min</td>
                <td><button type="button" class="danger" onClick={() => void revoke(k)} aria-label={`Revoke key ${k.name}`}>Revoke</button></td>
              </tr>
            ))}
          </tbody>
        </TableBox>
      ) : null}
    </section>
  );
}
