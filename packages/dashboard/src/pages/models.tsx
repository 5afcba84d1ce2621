import { useEffect, useState } from "preact/hooks";
import type { ModelsResponse } from "@tessera/protocol";
import { api, describeError } from "../api.js";
import { ErrorNote, TableBox } from "../components/status.js";
import { num } from "../format.js";

export function ModelsPage() {
  const [models, setModels] = useState<ModelsResponse["models"]>();
  const [error, setError] = useState<string>();
  useEffect(() => {
    api<ModelsResponse>("GET", "/dashboard/api/v1/models").then((r) => setModels(r.models), (err: unknown) => setError(describeError(err)));
  }, []);
  return (
    <section aria-labelledby="models-title">
      <h1 id="models-title">Models</h1>
      <p class="note">Models that at least one online node serves. Prices are in micro-USDC per 1,000 tokens.</p>
      <ErrorNote message={error} />
      {models && models.length === 0 ? <p>No model is being served right now.</p> : null}
      {models && models.length > 0 ? (
        <TableBox label="Models">
          <thead>
            <tr><th scope="col">Model</th><th scope="col">Nodes</th><th scope="col">Measured speed</th><th scope="col">Price in / out</th></tr>
          </thead>
          <tbody>
            {models.map((m) => (
              <tr key={m.id} data-testid="model-row">
                <th scope="row">{m.id}</th>
                <td>{m.nodes}</td>
                <td>{m.avg_tokens_per_second === null ? "not measured yet" : `${num(m.avg_tokens_per_second)} tokens/s`}</td>
                <td>{m.price.input === 0 && m.price.output === 0 ? "free" : `${m.price.input} / ${m.price.output}`}</td>
              </tr>
            ))}
          </tbody>
        </TableBox>
      ) : null}
    </section>
  );
}
