import { afterEach, beforeEach, describe, expect, it } from "vitest";
import OpenAI from "openai";
import type { StreamPart } from "@tessera/protocol";
import { type ScriptedNetwork, scriptedNetwork, streamNativeJob, type TestCoordinator } from "./harness.js";
import type { ScriptedNode } from "./scripted-node.js";

/**
 * Stop sequences are applied by the coordinator to what it relays, so every backend honours them, a stop split across
 * two parts is caught, the stop text is never sent, and a failover in the middle changes nothing.
 */
let net: ScriptedNetwork;
let t: TestCoordinator;
let baseUrl: string;
let nodes: ScriptedNode[];

beforeEach(async () => {
  net = await scriptedNetwork(2);
  ({ t, baseUrl, nodes } = net);
});

afterEach(async () => net.close());

const deltas = (texts: string[]): StreamPart[] => texts.map((text, i) => ({ type: "text-delta", text, tokens: [i + 1] }));

/** Every node answers with these parts (and then "finish stop", unless told not to finish). */
function answerWith(parts: StreamPart[], finish = true): void {
  for (const n of nodes) {
    n.onAssign = (job, self) => {
      self.accept(job.job_id);
      self.stream(job.job_id, [...parts, ...(finish ? [{ type: "finish", reason: "stop" } as const] : [])]);
    };
  }
}


describe("stop sequences", () => {
  it("ends the answer before a stop split across parts, never sends it, and stops the node", async () => {
    answerWith(deltas(["one two E", "N", "D three"]), false);
    const { id, events } = await streamNativeJob(net, { stop: "END" });
    expect(events).toEqual(['{"text":"one two "}', "[DONE]"]);
    const job = (await (await fetch(`${baseUrl}/api/v1/jobs/${id}`, { headers: { authorization: `Bearer ${t.token}` } })).json()) as {
      result: { content: string };
    };
    expect(job.result.content).toBe("one two ");
    expect(nodes.some((n) => n.cancels.includes(id))).toBe(true);
  });

  it("sends text held as a possible stop when it turns out not to be one, and at the end of the answer", async () => {
    answerWith(deltas(["one E", "NX two", " E"]));
    const { events } = await streamNativeJob(net, { stop: ["END", "\n\n"] });
    expect(events).toEqual(['{"text":"one "}', '{"text":"ENX two"}', '{"text":" "}', '{"text":"E"}', "[DONE]"]);
  });

  it("works through the official openai client, streaming and not, with finish_reason stop", async () => {
    const client = new OpenAI({ baseURL: `${baseUrl}/v1`, apiKey: t.token, maxRetries: 0 });
    answerWith(deltas(["1, 2, ", "3", ", 4, 5"]));
    const plain = await client.chat.completions.create({ model: "tiny", messages: [{ role: "user", content: "count" }], stop: ["3"] });
    expect(plain.choices[0]!.message.content).toBe("1, 2, ");
    expect(plain.choices[0]!.finish_reason).toBe("stop");
    const stream = await client.chat.completions.create({ model: "tiny", messages: [{ role: "user", content: "count" }], stop: [", 4"], stream: true });
    let text = "";
    let finish: string | null | undefined;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta.content ?? "";
      finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    expect(text).toBe("1, 2, 3");
    expect(finish).toBe("stop");
  });

  it("catches a stop whose start one node sent and whose end the node that took over sent", async () => {
    let first: ScriptedNode | undefined;
    for (const n of nodes) {
      n.onAssign = (job, self) => {
        self.accept(job.job_id);
        if (!first) {
          first = self;
          self.stream(job.job_id, deltas(["Hello wor", "ld\nUs"]));
          setTimeout(() => void self.close(), 30);
          return;
        }
        expect(job.assistant_prefix).toBe("Hello world\nUs");
        self.stream(job.job_id, [{ type: "text-delta", text: "er: more", tokens: [9] }, { type: "finish", reason: "stop" }]);
      };
    }
    const { events } = await streamNativeJob(net, { stop: "\nUser:" });
    expect(events).toEqual(['{"text":"Hello wor"}', '{"text":"ld"}', "[DONE]"]);
  });

  it.each([
    ["five stop sequences", { stop: ["a", "b", "c", "d", "e"] }],
    ["an empty stop sequence", { stop: "" }],
    ["a stop that is not a string", { stop: 7 }],
  ])("refuses %s with bad_request naming stop, and creates no job", async (_name, body) => {
    for (const path of ["/api/v1/jobs", "/v1/chat/completions"]) {
      const res = await fetch(`${baseUrl}${path}`, {
        method: "POST",
        headers: { authorization: `Bearer ${t.token}`, "content-type": "application/json" },
        body: JSON.stringify({ model: "tiny", messages: [{ role: "user", content: "hi" }], ...body }),
      });
      expect(res.status, path).toBe(400);
      expect(await res.text(), path).toContain("stop");
    }
    expect(t.coordinator.ctx.jobs.activeCount).toBe(0);
  });
});
