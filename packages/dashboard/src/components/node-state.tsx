import type { DashboardNode, DrainReason } from "@tessera/protocol";

/**
 * The words for why a node stepped aside (protocol drain-reason.ts). Typed against the protocol's reasons, so a
 * reason added there fails this build until it has words here.
 */
const AWAY_BECAUSE: Record<DrainReason, string> = {
  owner_active: "owner is using the machine",
  gpu_in_use: "another program is using the GPU",
  on_battery: "on battery",
  waiting_for_idle: "waiting for the machine to be idle",
  shutting_down: "shutting down",
  unspecified: "no reason given",
};

/** A node's state as people read it: serving ("enrolled"), away and why, or offline; and quarantine. */
export function NodeState({ node }: { node: Pick<DashboardNode, "state" | "drain_reason" | "quarantined"> }) {
  const label = node.state === "serving" ? "enrolled" : node.state === "draining" ? "away" : "offline";
  return (
    <>
      <span class={`badge ${node.state}`} title={`coordinator state: ${node.state}`}>{label}</span>
      {node.state === "draining" ? <span class="away-why" data-testid="away-reason">{AWAY_BECAUSE[node.drain_reason ?? "unspecified"]}</span> : null}
      {node.quarantined ? <span class="badge bad">quarantined</span> : null}
    </>
  );
}
