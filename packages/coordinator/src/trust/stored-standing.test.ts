import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { createLogger } from "../logger.js";
import { openStore } from "../store/open-store.js";
import type { Store } from "../store/types.js";
import { storedStandings } from "./stored-standing.js";

const dirs: string[] = [];
const stores: Store[] = [];
afterEach(async () => {
  for (const s of stores.splice(0)) await s.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const id = (n: number) => n.toString(16).padStart(64, "0");
const NOW = 1_700_000_000_000;

describe("storedStandings", () => {
  it("shows each stored node's tier, reputation, checks, quarantine and cooldown from the database alone", async () => {
    const dir = mkdtempSync(join(tmpdir(), "tessera-standing-"));
    dirs.push(dir);
    const store = await openStore({ sqlitePath: join(dir, "c.db") });
    stores.push(store);
    for (const n of [1, 2, 3, 4]) {
      await store.upsertNode({ id: id(n), version: "1", hardware: { cpu_cores: 1, ram_mb: 1, gpus: [], tier: "cpu" }, models: [{ id: "m", backend: "b" }], maxConcurrency: 1, operatorId: id(n), delegationExpiresAt: null }, new Date(NOW));
      for (let j = 0; j < 5; j++) await store.recordJobMetrics(id(n), "m", [{ tokensPerSecond: n === 1 ? 5 : 10, ttftMs: 100 }], new Date(NOW));
    }
    await store.saveNodeStanding({
      nodeId: id(1),
      operatorId: id(1),
      outcomes: "1".repeat(9) + "0",
      cheatLogOdds: 10,
      checksPassed: 4,
      checksFailed: 2,
      cooldownUntil: new Date(NOW + 60_000),
      offenceStreak: 1,
      lastOffenceAt: new Date(NOW - 1000),
      quarantinedAt: new Date(NOW - 500),
      updatedAt: new Date(NOW),
    });
    for (let j = 0; j < 200; j++) await store.addOperatorCompletedJobs(id(2), 1, new Date(NOW));

    const views = await storedStandings(store, NOW, createLogger("silent"));
    expect(views.get(id(1))).toMatchObject({ tier: "suspect", quarantined: true, checksPassed: 4, checksFailed: 2, completion: 0.9, speed: 0.5, cooldownUntil: NOW + 60_000 });
    expect(views.get(id(2))).toMatchObject({ tier: "normal", quarantined: false, completion: 1, speed: 1 });
    expect(views.get(id(3))).toMatchObject({ tier: "probation" });
    expect(views.size).toBe(4);
    // Nothing was written back.
    expect((await store.listNodeStandings()).map((s) => s.nodeId)).toEqual([id(1)]);
  });
});
