import { useEffect, useState } from "preact/hooks";
import type { DashboardOperatorView, DashboardPayoutAddress, PayoutRequestView } from "@tessera/protocol";
import { api, describeError } from "../api.js";
import { NodeState } from "../components/node-state.js";
import { ErrorNote, Stat, TableBox } from "../components/status.js";
import { pct, shortId, usdc, when } from "../format.js";
import { useSession } from "../session.js";

/** The chains the coordinator takes payout addresses on (settlement/chains.ts); it checks the name again. */
const PAYOUT_CHAINS = ["base", "ethereum", "polygon", "arbitrum"];

export function MyNodesPage() {
  const { session } = useSession();
  const [view, setView] = useState<DashboardOperatorView>();
  const [error, setError] = useState<string>();
  const [chain, setChain] = useState("base");
  const [address, setAddress] = useState("");
  const [saved, setSaved] = useState<DashboardPayoutAddress>();
  const [payoutError, setPayoutError] = useState<string>();
  const [requested, setRequested] = useState<PayoutRequestView>();
  const [asking, setAsking] = useState(false);
  const load = () => api<DashboardOperatorView>("GET", "/dashboard/api/operator").then(setView, (err: unknown) => setError(describeError(err)));
  useEffect(() => {
    if (session.kind === "operator") void load();
  }, [session.kind]);

  const setPayoutAddress = async (e: Event) => {
    e.preventDefault();
    setError(undefined);
    setSaved(undefined);
    try {
      setSaved(await api<DashboardPayoutAddress>("PUT", `/dashboard/api/operator/payout-addresses/${encodeURIComponent(chain)}`, { address: address.trim() }));
      setAddress("");
      await load();
    } catch (err) {
      setError(describeError(err));
    }
  };

  /** As `tessera payout request`: paid at the next settlement, to the default payout address. */
  const requestPayout = async () => {
    setPayoutError(undefined);
    setRequested(undefined);
    setAsking(true);
    try {
      setRequested(await api<PayoutRequestView>("POST", "/dashboard/api/operator/payout-requests", {}));
      await load();
    } catch (err) {
      setPayoutError(describeError(err));
    } finally {
      setAsking(false);
    }
  };

  if (session.kind !== "operator") {
    return (
      <section>
        <h1>My nodes</h1>
        <p class="note">
          Operators sign in with a one-time link: run <code>tessera dashboard login</code> on the node's machine and open the link it prints.
        </p>
      </section>
    );
  }
  const e = view?.earnings;
  return (
    <section aria-labelledby="mynodes-title">
      <h1 id="mynodes-title">My nodes</h1>
      <p class="note">Operator <code title={session.operator?.id}>{shortId(session.operator?.id ?? "")}</code></p>
      <ErrorNote message={error} />
      {e ? (
        <div class="stats">
          <Stat label="held (until checks clear)" value={usdc(e.held)} testId="earnings-held" />
          <Stat label="available" value={usdc(e.available)} />
          <Stat label="in a payout" value={usdc(e.in_flight)} />
          <Stat label="paid" value={usdc(e.paid)} />
          <Stat label="forfeited" value={usdc(e.forfeited)} />
        </div>
      ) : null}
      {view ? (
        <TableBox label="Your nodes">
          <thead><tr><th scope="col">Node</th><th scope="col">State</th><th scope="col">Tier</th><th scope="col">Reputation</th><th scope="col">Checks</th><th scope="col">Models</th><th scope="col">Jobs now</th><th scope="col">Jobs served</th><th scope="col">Last seen</th></tr></thead>
          <tbody>
            {view.nodes.map((n) => (
              <tr key={n.node_id} data-testid="my-node-row" data-node-id={n.node_id}>
                <th scope="row"><code title={n.node_id}>{shortId(n.node_id)}</code></th>
                <td><NodeState node={n} /></td>
                <td>{n.tier}</td>
                <td>{pct(n.reputation.score)}</td>
                <td>{n.checks.passed} / {n.checks.failed}</td>
                <td>{n.models.join(", ")}</td>
                <td>{n.active_jobs} / {n.max_concurrency}</td>
                <td data-testid="jobs-served">{n.jobs_served}</td>
                <td>{when(n.last_seen_at)}</td>
              </tr>
            ))}
          </tbody>
        </TableBox>
      ) : null}
      {e ? (
        <>
          <h2>Recent receipts</h2>
          {e.recent.length === 0 ? <p>No receipts yet: your nodes have not finished a paid job.</p> : (
            <TableBox label="Recent receipts">
              <thead><tr><th scope="col">Completed</th><th scope="col">Node</th><th scope="col">Model</th><th scope="col">Tokens</th><th scope="col">Earned</th><th scope="col">Status</th><th scope="col">Held until</th></tr></thead>
              <tbody>
                {e.recent.map((r) => (
                  <tr key={r.receipt_id} data-testid="receipt-row">
                    <th scope="row">{when(r.completed_at)}</th>
                    <td><code title={r.node_id}>{shortId(r.node_id)}</code></td>
                    <td>{r.model}</td>
                    <td>{r.output_tokens}</td>
                    <td>{usdc(r.earned)}</td>
                    <td>{r.status}</td>
                    <td>{when(r.hold_until)}</td>
                  </tr>
                ))}
              </tbody>
            </TableBox>
          )}
          <h2 id="payout-addresses-title">Payout addresses</h2>
          {view && view.payout_addresses.length > 0 ? (
            <TableBox label="Payout addresses">
              <thead><tr><th scope="col">Chain</th><th scope="col">Address</th><th scope="col">Set</th><th scope="col">Used for payouts</th></tr></thead>
              <tbody>
                {view.payout_addresses.map((a) => (
                  <tr key={a.chain} data-testid="payout-address-row">
                    <th scope="row">{a.chain}</th>
                    <td><code>{a.address}</code></td>
                    <td>{when(a.updated_at)}</td>
                    <td>{a.default ? "yes (the most recently set)" : "no"}</td>
                  </tr>
                ))}
              </tbody>
            </TableBox>
          ) : <p>No payout address yet: payouts need one (USDC on an EVM chain).</p>}
          <form class="inline" aria-labelledby="payout-addresses-title" onSubmit={(ev) => void setPayoutAddress(ev)}>
            <label>
              Chain
              <select value={chain} onChange={(ev) => setChain((ev.target as HTMLSelectElement).value)}>
                {PAYOUT_CHAINS.map((c) => <option key={c} value={c}>{c}</option>)}
              </select>
            </label>
            <label>
              Payout address
              <input value={address} onInput={(ev) => setAddress((ev.target as HTMLInputElement).value)} pattern="0x[0-9a-fA-F]{40}" required placeholder="0x…" spellcheck={false} autoComplete="off" />
            </label>
            <button type="submit">Set address</button>
          </form>
          {saved ? <p role="status" data-testid="payout-saved">Payouts on {saved.chain} now go to <code>{saved.address}</code>.</p> : null}
          <h2>Adding a machine</h2>
          <p class="note" data-testid="join-token-note">
            Join tokens are not yours to make: in <code>token</code> admission a join token admits a new <em>operator</em>, so only the
            coordinator's owner makes them (its Admin page, or <code>tessera coordinator join-tokens create</code>). Your operator key is
            already admitted: a new machine joins under it with a delegation, <code>tessera operator delegate npub1…</code> on the machine
            that holds your operator key (see docs/trust.md), and needs no join token.
          </p>
          <h2 id="payouts-title">Payouts</h2>
          <div class="actions" role="group" aria-labelledby="payouts-title">
            <button type="button" onClick={() => void requestPayout()} disabled={asking} data-testid="request-payout">
              Request a payout of {usdc(e.available)}
            </button>
          </div>
          <p class="note">
            Paid at the next settlement to your payout address{view?.payout_addresses[0] ? <> on {view.payout_addresses[0].chain}</> : null} (as{" "}
            <code>tessera payout request</code>); each chain has a minimum, and held earnings become available when their hold ends.
          </p>
          <ErrorNote message={payoutError} />
          {requested ? (
            <p role="status" data-testid="payout-requested">
              Payout of {usdc(requested.available)} asked for on {requested.chain}, to <code>{requested.address}</code>.
            </p>
          ) : null}
          {e.batches.length === 0 ? <p>No payouts yet.</p> : (
            <TableBox label="Payouts">
              <thead><tr><th scope="col">Created</th><th scope="col">Chain</th><th scope="col">Amount</th><th scope="col">To</th><th scope="col">Status</th><th scope="col">Transaction</th></tr></thead>
              <tbody>
                {e.batches.map((b) => (
                  <tr key={b.id}>
                    <th scope="row">{when(b.created_at)}</th>
                    <td>{b.chain}</td>
                    <td>{usdc(b.amount)}</td>
                    <td><code>{shortId(b.address)}</code></td>
                    <td>{b.status}</td>
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
