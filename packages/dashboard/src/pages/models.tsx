import { useEffect, useState } from "preact/hooks";
import type { ModelEntry, ModelsResponse } from "@tessera/protocol";
import { api, describeError } from "../api.js";
import { ErrorNote, TableBox } from "../components/status.js";
import { num } from "../format.js";

/** Whole on each node, or sharded: over how many stages, of how many layers, on how many nodes. */
function layout(m: ModelEntry): string {
  const s = m.sharded;
  if (!s) return "whole on each node";
  if (s.stages === null) return `sharded: ${s.layers} layers, not all held by its ${s.nodes} node(s)`;
  return `sharded over ${s.stages} stage${s.stages === 1 ? "" : "s"} (${s.layers} layers, ${s.nodes} node${s.nodes === 1 ? "" : "s"})${s.ready ? "" : ", loading"}`;
}

export function ModelsPage() {
  const [models, setModels] = useState<ModelsResponse["models"]>();
  const [error, setError] = useState<string>();
  useEffect(() => {
    api<ModelsResponse>("GET", "/dashboard/api/v1/models").then((r) => setModels(r.models), (err: unknown) => setError(describeError(err)));
  }, []);
  return (
    <section aria-labelledby="models-title">
      <h1 id="models-title">Models</h1>
      <p class="note">
        Models that at least one online node serves. Prices are in micro-USDC per 1,000 tokens. A <em>sharded</em> model is split by layers
        across nodes: a request runs through its stages in turn, one node each.
      </p>
      <ErrorNote message={error} />
      {models && models.length === 0 ? <p>No model is being served right now.</p> : null}
      {models && models.length > 0 ? (
        <TableBox label="Models">
          <thead>
            <tr><th scope="col">Model</th><th scope="col">Nodes</th><th scope="col">Measured speed</th><th scope="col">Price in / out</th><th scope="col">Layout</th></tr>
          </thead>
          <tbody>
            {models.map((m) => (
              <tr key={m.id} data-testid="model-row">
                <th scope="row">{m.id}</th>
                <td>{m.nodes}</td>
                <td>{m.avg_tokens_per_second === null ? "not measured yet" : `${num(m.avg_tokens_per_second)} tokens/s`}</td>
                <td>{m.price.input === 0 && m.price.output === 0 ? "free" : `${m.price.input} / ${m.price.output}`}</td>
                <td data-testid="model-layout">{layout(m)}</td>
              </tr>
            ))}
          </tbody>
        </TableBox>
      ) : null}
    </section>
  );
}
