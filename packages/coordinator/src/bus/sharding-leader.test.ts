import { describe, expect, it } from "vitest";
import { ManualClock } from "../clock.js";
import { LEADER_SETTLE_MS, ShardingLeader } from "./sharding-leader.js";

function leaderOf(replicaId: string, clock: ManualClock, peers: () => string[]) {
  const leading: boolean[] = [];
  const leader = new ShardingLeader({ replicaId, clock, peers, setLeading: (l) => void leading.push(l) });
  return { leader, leading };
}

describe("ShardingLeader", () => {
  it("counts the settle window from its first tick, so a slow start-up does not let it lead before it heard a beat", () => {
    const clock = new ManualClock(1_000);
    const { leader, leading } = leaderOf("a", clock, () => []);
    // The coordinator built the leader, then spent longer than the window restoring state and subscribing.
    clock.advance(LEADER_SETTLE_MS * 3);
    leader.tick();
    expect(leading).toEqual([false]);
    clock.advance(LEADER_SETTLE_MS - 1);
    leader.tick();
    expect(leading.at(-1)).toBe(false);
    clock.advance(1);
    leader.tick();
    expect(leading.at(-1)).toBe(true);
  });

  it("leads only while no live peer has a lower id", () => {
    const clock = new ManualClock(0);
    let peers = ["c"];
    const { leader, leading } = leaderOf("b", clock, () => peers);
    leader.tick();
    clock.advance(LEADER_SETTLE_MS);
    leader.tick();
    expect(leading.at(-1)).toBe(true);
    peers = ["a", "c"];
    leader.tick();
    expect(leading.at(-1)).toBe(false);
  });
});
