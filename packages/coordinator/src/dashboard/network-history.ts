import type { DashboardNetwork, DashboardNetworkSample } from "@tessera/protocol";
import type { Clock } from "../clock.js";
import type { NetworkSource } from "./network-source.js";

/** How often the Network page's figures are sampled while someone watches, and how long samples are kept. */
export const SAMPLE_INTERVAL_MS = 2_000;
export const HISTORY_MS = 60 * 60_000;
const MINUTE_MS = 60_000;
const MIN_SPAN_MS = 10_000;

interface Sample {
  at: number;
  finished: number;
  tokens: number;
  view: DashboardNetworkSample;
}

/**
 * The Network page's time series. Samples are taken on demand (a page load, or a tick of an open event stream) and
 * at most once per `SAMPLE_INTERVAL_MS`, so a coordinator nobody watches does no work. Jobs per minute is the
 * growth of the jobs-finished counter over the last minute of samples, and tokens per second that of the
 * completion-tokens counter over the same span: both null until the samples span 10 s.
 */
export class NetworkHistory {
  private readonly samples: Sample[] = [];

  constructor(private readonly source: NetworkSource, private readonly clock: Clock) {}

  async sample(): Promise<DashboardNetwork> {
    const now = this.clock.now();
    const last = this.samples.at(-1);
    if (!last || now - last.at >= SAMPLE_INTERVAL_MS) {
      const [finished, tokens] = await Promise.all([this.source.jobsFinishedTotal(), this.source.completionTokensTotal()]);
      this.samples.push({ at: now, finished, tokens, view: this.view(now, finished, tokens) });
      while (this.samples.length > 0 && now - this.samples[0]!.at > HISTORY_MS) this.samples.shift();
    }
    const views = this.samples.map((s) => s.view);
    return { now: views.at(-1)!, history: views.slice(0, -1) };
  }

  private view(now: number, finished: number, tokens: number): DashboardNetworkSample {
    const inFlight = this.source.jobsInFlight();
    let nodesOnline = 0;
    for (const n of this.source.nodes(now)) if (n.status === "online") nodesOnline++;
    // The newest sample at least a minute old (or, in the first minute, the oldest one at least 10 s old): the
    // counter's growth since then, scaled to one minute.
    const base = [...this.samples].reverse().find((s) => now - s.at >= MINUTE_MS) ?? this.samples.find((s) => now - s.at >= MIN_SPAN_MS);
    const perMinute = base === undefined ? null : Math.round(((finished - base.finished) * MINUTE_MS * 10) / (now - base.at)) / 10;
    const perSecond = base === undefined ? null : Math.round(((tokens - base.tokens) * 1000 * 10) / (now - base.at)) / 10;
    return {
      at: new Date(now).toISOString(),
      nodes_online: nodesOnline,
      models: this.source.onlineModels(),
      jobs_in_flight: inFlight.active,
      jobs_pending: inFlight.pending,
      jobs_per_minute: perMinute,
      tokens_per_second: perSecond,
      capacity_tokens_per_second: this.source.capacityTokensPerSecond(),
    };
  }
}
