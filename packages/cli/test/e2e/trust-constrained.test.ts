import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CITY_SCHEMA, WEATHER_TOOL, makeTinyModel, waitUntil } from "@tessera/testkit";
import { ProcessNetwork } from "./process-network.js";

/**
 * Spot checks of answers made under a grammar (tools, JSON mode), on real processes: a coordinator checking every
 * answer (`--check-rate 1`), two honest daemons on the embedded engine serving one ~50M F16 file (the references),
 * and a cheating daemon serving other weights under the same name. Clients send JSON-schema chats pinned to each
 * node and tool chats that must call (`tool_choice: required`), in rounds, until the cheater is quarantined and the
 * honest daemons have passed 4 checks between them (or MAX_ROUNDS have run).
 * The honest daemons' constrained answers pass their checks (the reference ranks them under the same grammar); the
 * cheater's fail; every call answer is signed over its ids.
 */
const MODEL = "grammar-50m";
const MAX_ROUNDS = 30;
let dir: string;
let network: ProcessNetwork;
let client: OpenAI;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "tessera-trust-grammar-"));
  for (const sub of ["honest", "swap"]) mkdirSync(join(dir, sub));
  const honest = join(dir, "honest", `${MODEL}.gguf`);
  const swap = join(dir, "swap", `${MODEL}.gguf`);
  await makeTinyModel({ path: honest, seed: 1, preset: "50m", vocab: "spm" });
  await makeTinyModel({ path: swap, seed: 2, preset: "50m", vocab: "spm" });
  network = await ProcessNetwork.onFreePort(dir);
  const ids: Record<string, string> = {};
  for (const [name, path] of [["honest1", honest], ["honest2", honest], ["swap", swap]] as const) ids[name] = await network.initNode(name, ["--backend", "embedded", "--model", path]);
  await network.start(["--check-rate", "1", "--reference-node", ids.honest1!, ids.honest2!], ids);
  client = new OpenAI({ baseURL: `${network.url}/v1`, apiKey: "open-mode", maxRetries: 0 });
}, 300_000);

afterAll(async () => {
  await network?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("spot checks of constrained answers on real processes", () => {
  it("passes the honest nodes' tool calls and JSON, and quarantines the node serving other weights", async () => {
    const view = (name: string) => network.nodeView(network.daemons.get(name)!.id);
    const done = async () => {
      const [swap, ...honest] = await Promise.all(["swap", "honest1", "honest2"].map(view));
      // The scheduler may favour one honest node: their passes are counted together.
      return swap!.quarantined && honest.reduce((sum, v) => sum + v.checks.passed, 0) >= 4;
    };
    let calls = 0;
    let json = 0;
    // Each round: a JSON-schema job pinned to every node not quarantined (the jobs API pins; a scheduler that comes
    // to avoid a node must not hide it from the test), and one tool chat that must call, through the OpenAI route
    // (which has tools but no pinning).
    for (let round = 0; round < MAX_ROUNDS && !(await done()); round++) {
      const open: string[] = [];
      for (const [, d] of network.daemons) if (!(await network.nodeView(d.id)).quarantined) open.push(d.id);
      const content = `Round ${round}: what is the weather like, and which city is it?`;
      const pinned = open.map(async (nodeId) => {
        const ended = await network.job({ model: MODEL, content, maxTokens: 48, nodeId, responseFormat: { type: "json_schema", json_schema: { name: "city", schema: CITY_SCHEMA, strict: true } } });
        // A check may quarantine the node between the listing and its job: then the job is refused or fails.
        if (ended.status !== "completed" && !(await network.nodeView(nodeId)).quarantined) throw new Error(`job ${ended.id} on ${nodeId}: ${ended.status} ${ended.error ?? ""}`);
        if (ended.status === "completed") json++;
      });
      const called = client.chat.completions
        .create({ model: MODEL, messages: [{ role: "user", content }], tools: [WEATHER_TOOL], tool_choice: "required", temperature: 0, max_tokens: 48 })
        .then((answer) => {
          const call = answer.choices[0]!.message.tool_calls?.[0];
          if (call?.type !== "function") throw new Error(`no function call in ${JSON.stringify(answer.choices[0])}`);
          expect(call.function.name).toBe("get_weather");
          if (answer.choices[0]!.finish_reason === "tool_calls") expect(Object.keys(JSON.parse(call.function.arguments) as object).sort()).toEqual(["city", "unit"]);
          calls++;
        });
      await Promise.all([...pinned, called]);
    }
    // A check lands after its answer is delivered: give the last ones time.
    await waitUntil(done, 60_000).catch(async (err: Error) => {
      const state = await Promise.all(["honest1", "honest2", "swap"].map(async (name) => `${name} ${JSON.stringify(await view(name))}`));
      const metrics = (await (await fetch(`${network.url}/metrics`)).text()).split("\n").filter((l) => /tessera_(checks|spot|result_commitments)/.test(l) && !l.startsWith("#"));
      throw new Error(`${err.message} after ${calls} calls and ${json} JSON answers:\n${state.join("\n")}\n${metrics.join("\n")}`);
    });
    const views = Object.fromEntries(await Promise.all(["honest1", "honest2", "swap"].map(async (name) => [name, await view(name)] as const)));
    process.stdout.write(
      `constrained checks e2e, ${calls} tool calls and ${json} JSON answers: ${Object.entries(views)
        .map(([name, v]) => `${name} checks ${v.checks.passed}/${v.checks.failed} ${v.quarantined ? "QUARANTINED" : "ok"}`)
        .join("; ")}\n`,
    );
    for (const name of ["honest1", "honest2"]) expect(views[name], name).toMatchObject({ quarantined: false, checks: { failed: 0 } });
    expect(views.honest1!.checks.passed + views.honest2!.checks.passed).toBeGreaterThanOrEqual(4);
    expect(views.swap).toMatchObject({ quarantined: true });
    expect(views.swap!.checks.failed).toBeGreaterThanOrEqual(2);

    // Every answer, calls included, was signed over the ids the coordinator relayed.
    const metrics = await (await fetch(`${network.url}/metrics`)).text();
    expect(Number(/tessera_result_commitments_total\{outcome="valid"\} (\d+)/.exec(metrics)?.[1])).toBeGreaterThanOrEqual(calls + json);
    expect(metrics).not.toMatch(/outcome="invalid"/);
  }, 600_000);
});
