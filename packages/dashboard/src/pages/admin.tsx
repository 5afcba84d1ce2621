import { useEffect, useState } from "preact/hooks";
import type { DashboardAdminOperator, DashboardAdminView, DashboardJoinToken, DashboardJoinTokenCreated } from "@tessera/protocol";
import { api, describeError } from "../api.js";
import { ShownOnce } from "../components/shown-once.js";
import { ErrorNote, Stat, TableBox } from "../components/status.js";
import { shortId, usdc, when } from "../format.js";
import { useSession } from "../session.js";

/** How long a new join token lasts: the choices offered (the coordinator takes a minute to 365 days). */
const TOKEN_LIFETIMES: Array<[string, number]> = [["1 hour", 3600], ["24 hours", 86_400], ["7 days", 7 * 86_400], ["30 days", 30 * 86_400]];

/**
 * The owner's page: the admission queue and operators (approve, ban), join tokens (make, revoke), quarantined nodes
 * (release), and the settlement status.
 */
export function AdminPage() {
  const { session } = useSession();
  const [view, setView] = useState<DashboardAdminView>();
  const [error, setError] = useState<string>();
  const [uses, setUses] = useState("1");
  const [lifetime, setLifetime] = useState("86400");
  const [note, setNote] = useState("");
  const [created, setCreated] = useState<DashboardJoinTokenCreated>();
  const load = () => api<DashboardAdminView>("GET", "/dashboard/api/admin").then(setView, (err: unknown) => setError(describeError(err)));
  useEffect(() => {
    if (session.kind === "admin") void load();
  }, [session.kind]);

  if (session.kind !== "admin") {
    return (
      <section>
        <h1>Admin</h1>
        <p class="note">For the coordinator's owner: run <code>tessera dashboard owner-login</code> on the coordinator's machine and open the link it prints.</p>
      </section>
    );
  }

  const setStatus = async (o: DashboardAdminOperator, status: "active" | "banned") => {
    if (status === "banned" && !confirm(`Ban operator ${o.id}? Its nodes are disconnected and refused.`)) return;
    setError(undefined);
    try {
      await api("POST", `/dashboard/api/admin/operators/${encodeURIComponent(o.id)}`, { status });
      await load();
    } catch (err) {
      setError(describeError(err));
    }
  };

  const act = async (work: () => Promise<unknown>) => {
    setError(undefined);
    try {
      await work();
      await load();
    } catch (err) {
      setError(describeError(err));
    }
  };
  const createToken = (e: Event) => {
    e.preventDefault();
    const body = { uses: Number(uses), expires_in_seconds: Number(lifetime), ...(note.trim() ? { note: note.trim() } : {}) };
    void act(async () => {
      setCreated(await api<DashboardJoinTokenCreated>("POST", "/dashboard/api/admin/join-tokens", body));
      setNote("");
    });
  };
  const revokeToken = (t: DashboardJoinToken) => {
    if (!confirm(`Revoke join token ${t.id}? Nobody can join with it any more.`)) return;
    void act(async () => {
      await api("DELETE", `/dashboard/api/admin/join-tokens/${encodeURIComponent(t.id)}`);
      if (created?.id === t.id) setCreated(undefined);
    });
  };
  const release = (nodeId: string) => void act(() => api("POST", `/dashboard/api/admin/nodes/${encodeURIComponent(nodeId)}/release`, {}));

  const pending = view?.operators.filter((o) => o.status === "pending") ?? [];
  return (
    <section aria-labelledby="admin-title">
      <h1 id="admin-title">Admin</h1>
      <ErrorNote message={error} />
      {view ? (
        <>
          <div class="stats">
            <Stat label="admission" value={view.admission} />
            <Stat label="operators" value={view.operators.length} testId="operator-count" />
            <Stat label="waiting for approval" value={pending.length} />
            <Stat label="banned" value={view.operators.filter((o) => o.status === "banned").length} />
            <Stat label="payouts asked for" value={view.payout_requests.length} />
          </div>
          <h2>Operators</h2>
          {view.operators.length === 0 ? <p>No operators yet.</p> : (
            <TableBox label="Operators">
              <thead><tr><th scope="col">Operator</th><th scope="col">Status</th><th scope="col">Nodes</th><th scope="col">Admitted via</th><th scope="col">Since</th><th scope="col">Reason</th><th scope="col">Action</th></tr></thead>
              <tbody>
                {view.operators.map((o) => (
                  <tr key={o.id} data-testid="operator-row" data-operator-id={o.id}>
                    <th scope="row"><code title={o.id}>{shortId(o.id)}</code></th>
                    <td><span class={`badge ${o.status === "banned" ? "bad" : o.status === "active" ? "serving" : ""}`}>{o.status}</span></td>
                    <td>{o.nodes}</td>
                    <td>{o.admitted_via}</td>
                    <td>{when(o.since)}</td>
                    <td>{o.reason ?? "—"}</td>
                    <td>
                      {o.status !== "active" ? <button type="button" onClick={() => void setStatus(o, "active")} aria-label={`Approve operator ${o.id}`}>{o.status === "banned" ? "Unban" : "Approve"}</button> : null}
                      {o.status !== "banned" ? <button type="button" class="danger" onClick={() => void setStatus(o, "banned")} aria-label={`Ban operator ${o.id}`}>Ban</button> : null}
                    </td>
                  </tr>
                ))}
              </tbody>
            </TableBox>
          )}
          <h2 id="join-tokens-title">Join tokens</h2>
          <p class="note">
            {view.admission === "token" ? "New operators join with a join token." : `Admission is "${view.admission}": join tokens are used only when it is "token".`}
          </p>
          <form class="inline" aria-labelledby="join-tokens-title" onSubmit={createToken}>
            <label>
              Uses
              <input type="number" min={1} max={100000} step={1} value={uses} onInput={(e) => setUses((e.target as HTMLInputElement).value)} required />
            </label>
            <label>
              Valid for
              <select value={lifetime} onChange={(e) => setLifetime((e.target as HTMLSelectElement).value)}>
                {TOKEN_LIFETIMES.map(([label, seconds]) => <option key={seconds} value={String(seconds)}>{label}</option>)}
              </select>
            </label>
            <label>
              Note
              <input value={note} maxLength={200} onInput={(e) => setNote((e.target as HTMLInputElement).value)} placeholder="for whom" />
            </label>
            <button type="submit">Create join token</button>
          </form>
          {created ? (
            <ShownOnce heading={<h3>Join token created</h3>} token={created.token} testId="new-join-token" onStored={() => setCreated(undefined)}>
              <p>This token is shown once. The new operator runs <code>tessera setup --join-token &lt;token&gt;</code>.</p>
            </ShownOnce>
          ) : null}
          {view.join_tokens.length === 0 ? <p>No join tokens.</p> : (
            <TableBox label="Join tokens">
              <thead><tr><th scope="col">Id</th><th scope="col">State</th><th scope="col">Used</th><th scope="col">Until</th><th scope="col">Note</th><th scope="col">Action</th></tr></thead>
              <tbody>
                {view.join_tokens.map((t) => (
                  <tr key={t.id} data-testid="join-token-row" data-state={t.state}>
                    <th scope="row"><code title={t.id}>{shortId(t.id)}</code></th>
                    <td>{t.state}</td>
                    <td>{t.uses} / {t.max_uses}</td>
                    <td>{when(t.expires_at)}</td>
                    <td>{t.note ?? "—"}</td>
                    <td>{t.state === "revoked" ? "—" : <button type="button" class="danger" onClick={() => revokeToken(t)} aria-label={`Revoke join token ${t.id}`}>Revoke</button>}</td>
                  </tr>
                ))}
              </tbody>
            </TableBox>
          )}
          <h2>Quarantined nodes</h2>
          {view.quarantined_nodes.length === 0 ? <p data-testid="no-quarantine">No node is in quarantine.</p> : (
            <TableBox label="Quarantined nodes">
              <thead><tr><th scope="col">Node</th><th scope="col">Operator</th><th scope="col">Status</th><th scope="col">Checks</th><th scope="col">Action</th></tr></thead>
              <tbody>
                {view.quarantined_nodes.map((n) => (
                  <tr key={n.node_id} data-testid="quarantined-row">
                    <th scope="row"><code title={n.node_id}>{shortId(n.node_id)}</code></th>
                    <td><code title={n.operator}>{shortId(n.operator)}</code></td>
                    <td>{n.status}</td>
                    <td>{n.checks.passed} / {n.checks.failed}</td>
                    <td><button type="button" onClick={() => release(n.node_id)} aria-label={`Release node ${n.node_id} from quarantine`}>Release</button></td>
                  </tr>
                ))}
              </tbody>
            </TableBox>
          )}
          <p class="note">A release takes effect within 5 s: the node routes again and its next checks decide afresh.</p>
          <h2>Settlement</h2>
          <p data-testid="settlement-chains">
            {view.settlement_chains.length > 0
              ? `Pays out on ${view.settlement_chains.join(", ")}.`
              : "Pays out on no chain: payouts are recorded but not settled until --chain-rpc, --vault and --payer-key-file are set (docs/earnings.md)."}{" "}
            Schedule: {view.payout_schedule}{view.next_payout_at ? `, next run ${when(view.next_payout_at)}` : ""}. The coordinator runs settlement itself; there is no command to start one.
          </p>
          {view.payout_batches.length === 0 ? <p>No payout batches yet ({view.payout_requests.length} operators asked to be paid).</p> : (
            <TableBox label="Payout batches">
              <thead><tr><th scope="col">Created</th><th scope="col">Chain</th><th scope="col">Total</th><th scope="col">Operators</th><th scope="col">Status</th><th scope="col">Transaction</th></tr></thead>
              <tbody>
                {view.payout_batches.map((b) => (
                  <tr key={b.id}>
                    <th scope="row">{when(b.created_at)}</th>
                    <td>{b.chain}</td>
                    <td>{usdc(b.total)}</td>
                    <td>{b.operators}</td>
                    <td>{b.status}{b.error ? ` (${b.error})` : ""}</td>
                    <td>{b.tx_hash ? <code>{shortId(b.tx_hash)}</code> : "—"}</td>
                  </tr>
                ))}
              </tbody>
            </TableBox>
          )}
        </>
      ) : null}
    </section>
  );
}
