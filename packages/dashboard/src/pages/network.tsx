import { useMemo } from "preact/hooks";
import { Chart } from "../components/chart.js";
import { ErrorNote, Stat } from "../components/status.js";
import { num } from "../format.js";
import { useLiveNetwork } from "../live.js";

export function NetworkPage() {
  const { samples, error, live } = useLiveNetwork();
  const now = samples.at(-1);
  const times = useMemo(() => samples.map((s) => Date.parse(s.at) / 1000), [samples]);
  const load = useMemo(
    () => [
      { label: "nodes online", values: samples.map((s) => s.nodes_online), color: "#1f6feb" },
      { label: "jobs running", values: samples.map((s) => s.jobs_in_flight), color: "#d29922" },
      { label: "jobs waiting", values: samples.map((s) => s.jobs_pending), color: "#cf222e" },
    ],
    [samples],
  );
  const rate = useMemo(() => [{ label: "jobs/min", values: samples.map((s) => s.jobs_per_minute), color: "#2da44e" }], [samples]);
  const served = useMemo(() => [{ label: "tokens/s", values: samples.map((s) => s.tokens_per_second), color: "#0969da" }], [samples]);
  const capacity = useMemo(() => [{ label: "tokens/s", values: samples.map((s) => s.capacity_tokens_per_second), color: "#8250df" }], [samples]);
  return (
    <section aria-labelledby="network-title">
      <h1 id="network-title">Network</h1>
      <p class="note">
        <span class={live ? "dot on" : "dot"} aria-hidden="true" /> {live ? "Live: updates every few seconds." : "Connecting to live updates…"}
      </p>
      <ErrorNote message={error} />
      <div class="stats">
        <Stat label="nodes online" value={num(now?.nodes_online)} testId="nodes-online" />
        <Stat label="models" value={num(now?.models)} testId="models-count" />
        <Stat label="jobs running" value={num(now?.jobs_in_flight)} />
        <Stat label="jobs per minute" value={num(now?.jobs_per_minute)} testId="jobs-per-minute" />
        <Stat label="served, tokens/s" value={num(now?.tokens_per_second)} testId="tokens-per-second" />
        <Stat label="capacity, tokens/s" value={num(now?.capacity_tokens_per_second)} testId="capacity" />
      </div>
      <div class="charts">
        <Chart title="Nodes and jobs" times={times} series={load} />
        <Chart title="Jobs finished per minute" times={times} series={rate} />
        <Chart title="Tokens served per second" times={times} series={served} />
        <Chart title="Capacity (measured decode speed of online nodes), tokens/s" times={times} series={capacity} />
      </div>
    </section>
  );
}
