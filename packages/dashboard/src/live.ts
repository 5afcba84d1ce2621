import { useEffect, useState } from "preact/hooks";
import type { DashboardNetwork, DashboardNetworkSample, DashboardNode, DashboardNodes } from "@tessera/protocol";
import { api, describeError } from "./api.js";

/** Samples kept on the page (an hour at the coordinator's 2 s interval). */
const MAX_POINTS = 1800;

export interface LiveNetwork {
  samples: DashboardNetworkSample[];
  nodes: DashboardNode[] | undefined;
  error: string | undefined;
  /** The event stream is open. */
  live: boolean;
}

/**
 * The network's figures and nodes: loaded once, then kept current by the coordinator's event stream
 * (`/dashboard/api/events`, a `network` and a `nodes` event every couple of seconds). EventSource reconnects by itself.
 */
export function useLiveNetwork(): LiveNetwork {
  const [state, setState] = useState<LiveNetwork>({ samples: [], nodes: undefined, error: undefined, live: false });
  useEffect(() => {
    let closed = false;
    Promise.all([api<DashboardNetwork>("GET", "/dashboard/api/network"), api<DashboardNodes>("GET", "/dashboard/api/nodes")])
      .then(([network, nodes]) => {
        if (!closed) setState((s) => ({ ...s, samples: merge([...network.history, network.now], s.samples), nodes: s.nodes ?? nodes.nodes, error: undefined }));
      })
      .catch((err: unknown) => !closed && setState((s) => ({ ...s, error: describeError(err) })));
    const events = new EventSource("/dashboard/api/events");
    events.addEventListener("open", () => setState((s) => ({ ...s, live: true })));
    events.addEventListener("error", () => setState((s) => ({ ...s, live: false })));
    events.addEventListener("network", (e) => {
      const sample = JSON.parse((e as MessageEvent<string>).data) as DashboardNetworkSample;
      setState((s) => ({ ...s, samples: merge(s.samples, [sample]), error: undefined }));
    });
    events.addEventListener("nodes", (e) => {
      const { nodes } = JSON.parse((e as MessageEvent<string>).data) as DashboardNodes;
      setState((s) => ({ ...s, nodes }));
    });
    return () => {
      closed = true;
      events.close();
    };
  }, []);
  return state;
}

/** Both lists in time order, one point per timestamp, the newest kept. */
function merge(a: DashboardNetworkSample[], b: DashboardNetworkSample[]): DashboardNetworkSample[] {
  const byTime = new Map<string, DashboardNetworkSample>();
  for (const s of [...a, ...b]) byTime.set(s.at, s);
  return [...byTime.values()].sort((x, y) => x.at.localeCompare(y.at)).slice(-MAX_POINTS);
}
