import { NodeState } from "../components/node-state.js";
import { ErrorNote, TableBox } from "../components/status.js";
import { pct, shortId, when } from "../format.js";
import { useLiveNetwork } from "../live.js";

export function NodesPage() {
  const { nodes, error } = useLiveNetwork();
  return (
    <section aria-labelledby="nodes-title">
      <h1 id="nodes-title">Nodes</h1>
      <p class="note">
        Every node this coordinator knows, with what it chose to announce and its standing. Live. A node is <em>enrolled</em> while it
        takes jobs and <em>away</em> when it stepped aside, with the reason it gave (its owner is using the machine, it is on battery, …).
      </p>
      <ErrorNote message={error} />
      {nodes && nodes.length === 0 ? <p>No node has registered yet.</p> : null}
      {nodes && nodes.length > 0 ? (
        <TableBox label="Nodes">
          <thead>
            <tr>
              <th scope="col">Node</th><th scope="col">State</th><th scope="col">Tier</th><th scope="col">Reputation</th><th scope="col">Checks passed / failed</th>
              <th scope="col">Hardware</th><th scope="col">Models</th><th scope="col">Jobs</th><th scope="col">Operator</th><th scope="col">Last seen</th>
            </tr>
          </thead>
          <tbody>
            {nodes.map((n) => (
              <tr key={n.node_id} data-testid="node-row" data-node-id={n.node_id}>
                <th scope="row" title={n.node_id}><code>{shortId(n.node_id)}</code></th>
                <td><NodeState node={n} /></td>
                <td>{n.tier}</td>
                <td title={`completion ${pct(n.reputation.completion)}, speed ${pct(n.reputation.speed)}, verification ${pct(n.reputation.verification)}`}>{pct(n.reputation.score)}</td>
                <td>{n.checks.passed} / {n.checks.failed}</td>
                <td>
                  {n.hardware_class ?? "unclassed"} · {n.cpu_cores} cores · {Math.round(n.ram_mb / 1024)} GB
                  {n.gpus.length ? ` · ${n.gpus.map((g) => g.name).join(", ")}` : ""}
                </td>
                <td>{n.models.join(", ")}</td>
                <td>{n.active_jobs} / {n.max_concurrency}</td>
                <td title={n.operator}><code>{shortId(n.operator)}</code></td>
                <td>{when(n.last_seen_at)}</td>
              </tr>
            ))}
          </tbody>
        </TableBox>
      ) : null}
    </section>
  );
}
