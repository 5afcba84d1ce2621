import { useEffect, useState } from "preact/hooks";
import type { BillingView } from "@tessera/protocol";
import { api, describeError } from "../api.js";
import { ErrorNote, NeedsSignIn, Stat, TableBox } from "../components/status.js";
import { usdc, when } from "../format.js";
import { useSession } from "../session.js";

export function BillingPage() {
  const { session } = useSession();
  const [billing, setBilling] = useState<BillingView>();
  const [error, setError] = useState<string>();
  useEffect(() => {
    if (session.kind === "client") api<BillingView>("GET", "/dashboard/api/v1/billing").then(setBilling, (err: unknown) => setError(describeError(err)));
  }, [session.kind]);
  if (session.kind !== "client") return <section><h1>Billing</h1><NeedsSignIn what="the credits and spend of your API key" /></section>;
  return (
    <section aria-labelledby="billing-title">
      <h1 id="billing-title">Billing</h1>
      <ErrorNote message={error} />
      {billing ? (
        <>
          {!billing.ledger ? <p class="note">This network keeps no ledger: jobs are free.</p> : null}
          <div class="stats">
            <Stat label="credit balance" value={usdc(billing.balance.micro)} testId="balance" />
            <Stat label="held for running jobs" value={usdc(billing.held.micro)} />
          </div>
          <h2>Spend per day (last 30 days)</h2>
          {billing.spend_by_day.length === 0 ? <p>No spend yet.</p> : (
            <TableBox label="Spend per day">
              <thead><tr><th scope="col">Day (UTC)</th><th scope="col">Spent</th><th scope="col">Jobs</th></tr></thead>
              <tbody>{billing.spend_by_day.map((d) => <tr key={d.day}><th scope="row">{d.day}</th><td>{usdc(d.amount.micro)}</td><td>{d.receipts}</td></tr>)}</tbody>
            </TableBox>
          )}
          <h2>Top-ups</h2>
          {billing.top_ups.length === 0 ? <p>No top-ups yet.</p> : (
            <TableBox label="Top-ups">
              <thead><tr><th scope="col">When</th><th scope="col">Amount</th><th scope="col">Source</th></tr></thead>
              <tbody>{billing.top_ups.map((t) => <tr key={t.at}><th scope="row">{when(t.at)}</th><td>{usdc(t.amount.micro)}</td><td>{t.source ?? "—"}</td></tr>)}</tbody>
            </TableBox>
          )}
        </>
      ) : null}
    </section>
  );
}
