import { useEffect, useState } from "preact/hooks";
import type { DashboardAdminOperator, DashboardAdminView } from "@tessera/protocol";
import { api, describeError } from "../api.js";
import { ErrorNote, Stat, TableBox } from "../components/status.js";
import { shortId, usdc, when } from "../format.js";
import { useSession } from "../session.js";

/** The owner's page: the admission queue and operators (approve, ban), and the settlement status. */
export function AdminPage() {
  const { session } = useSession();
  const [view, setView] = useState<DashboardAdminView>();
  const [error, setError] = useState<string>();
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
          <h2>Settlement</h2>
          {view.payout_batches.length === 0 ? <p>No payout batches yet ({view.payout_requests.length} operators asked to be paid). Pay with <code>tessera coordinator settlement</code>.</p> : (
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
