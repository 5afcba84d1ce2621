import { afterEach, beforeEach, describe, expect, it } from "vitest";
import OpenAI from "openai";
import { refusal } from "./openai-refusal.js";
import { unsupportedChatField } from "@tessera/protocol";
import { newNode, registration, signedInject, testCoordinator, type TestCoordinator } from "./harness.js";

/** What an OpenAI client shows a user when the coordinator refuses: the message, the field at fault, the stable code. */
let t: TestCoordinator;
let client: OpenAI;

beforeEach(async () => {
  t = await testCoordinator();
  await t.coordinator.app.listen({ host: "127.0.0.1", port: 0 });
  const port = (t.coordinator.app.server.address() as { port: number }).port;
  const n = newNode();
  expect((await signedInject(t, n.signer, "POST", "/api/v1/nodes/register", registration(n.id))).statusCode).toBe(200);
  client = new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey: t.token, maxRetries: 0 });
});

afterEach(async () => t.close());

describe("errors on /v1 in OpenAI's shape", () => {
  it("a model nobody serves: 404 with the available models in the message and param model", async () => {
    const err = await refusal(() => client.chat.completions.create({ model: "nope", messages: [{ role: "user", content: "hi" }] }));
    expect(err).toBeInstanceOf(OpenAI.NotFoundError);
    expect(err.message).toMatch(/model "nope" not found; available models: tiny/);
    expect(err.code).toBe("model_not_found");
    expect(err.param).toBe("model");
  });

  it("a bad field: 400 naming it", async () => {
    const err = await refusal(() =>
      client.chat.completions.create({ model: "tiny", messages: [{ role: "user", content: "hi" }], temperature: 7 }),
    );
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect(err.message).toMatch(/temperature/);
    expect(err.code).toBe("bad_request");
    expect(err.param).toBe("temperature");
  });

  it("a wrong key: 401 with the reason", async () => {
    const wrong = new OpenAI({ baseURL: client.baseURL, apiKey: "tsk_wrong", maxRetries: 0 });
    const err = await refusal(() => wrong.models.list());
    expect(err).toBeInstanceOf(OpenAI.AuthenticationError);
    expect(err.message).toMatch(/unknown or revoked API key/);
    expect(err.code).toBe("unauthorized");
  });
});

describe("models as OpenAI lists them", () => {
  it("lists served models with the time they were first announced, and retrieves one by id", async () => {
    const list = await client.models.list();
    expect(list.data.map((m) => m.id)).toEqual(["tiny"]);
    const created = list.data[0]!.created;
    expect(created).toBe(Math.floor(t.coordinator.ctx.registry.firstServed("tiny")! / 1000));
    expect(created).toBeGreaterThan(0);
    const model = await client.models.retrieve("tiny");
    expect(model).toMatchObject({ id: "tiny", object: "model", created, owned_by: "tessera" });
    const err = await refusal(() => client.models.retrieve("nope"));
    expect(err).toBeInstanceOf(OpenAI.NotFoundError);
    expect(err.message).toMatch(/model "nope" is not served right now; available models: tiny/);
  });

  it("fails at once, retryably, for a model whose nodes are all away, and leaves it out of the lists", async () => {
    const away = newNode();
    expect((await signedInject(t, away.signer, "POST", "/api/v1/nodes/register", registration(away.id, ["gone"]))).statusCode).toBe(200);
    expect((await client.models.list()).data.map((m) => m.id)).toEqual(["gone", "tiny"]);
    t.clock.advance(t.config.offlineAfterS * 1000 + 1);
    t.coordinator.tick(); // both nodes are silent now: offline
    expect((await client.models.list()).data).toEqual([]);
    const err = await refusal(() => client.chat.completions.create({ model: "gone", messages: [{ role: "user", content: "hi" }] }));
    expect(err.status).toBe(503);
    expect(err.code).toBe("no_capacity");
    expect(err.message).toMatch(/no node serving model "gone" is online right now/);
    expect(err.headers?.get("retry-after")).toBe("10");
    expect(t.coordinator.ctx.jobs.activeCount).toBe(0);
  });
});

describe("parameters Tessera cannot honour are refused by name, never ignored", () => {
  const chat = { model: "tiny", messages: [{ role: "user" as const, content: "hi" }] };

  // The codes as on /v1/completions and /v1/embeddings: unsupported_parameter for an OpenAI parameter Tessera does not
  // implement, bad_request for a value out of range or a field OpenAI does not have either.
  it.each([
    ["top_logprobs without logprobs", { top_logprobs: 2 }, "top_logprobs", "bad_request", /top_logprobs needs logprobs: true/],
    ["a penalty", { frequency_penalty: 0.5 }, "frequency_penalty", "unsupported_parameter", /frequency_penalty is not supported yet/],
    ["n: 9", { n: 9 }, "n", "bad_request", /n is at most 8/],
    ["an unknown field", { temprature: 0.2 }, "temprature", "bad_request", /unrecognized request argument: temprature/],
    ["a deprecated function message", { messages: [{ role: "function", name: "f", content: "1" }] }, "messages.0.role", "unsupported_parameter", /function messages are deprecated/],
  ])("%s", async (_name, extra, param, code, message) => {
    const err = await refusal(() => client.chat.completions.create({ ...chat, ...extra } as never));
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect(err.param).toBe(param);
    expect(err.code).toBe(code);
    expect(err.message).toMatch(message);
    expect(t.coordinator.ctx.jobs.activeCount).toBe(0);
  });

  it("says that an image part is not taken, naming where it is", async () => {
    const err = await refusal(() =>
      client.chat.completions.create({
        model: "tiny",
        messages: [{ role: "user", content: [{ type: "text", text: "what is this?" }, { type: "image_url", image_url: { url: "data:image/png;base64,AAAA" } }] }],
      }),
    );
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect(err.param).toBe("messages.0.content.1");
    expect(err.code).toBe("unsupported_parameter");
    expect(err.message).toMatch(/this model does not take images/);
  });

  it("accepts what SDKs send by default at its neutral value, and the documented bookkeeping fields", async () => {
    const body = { ...chat, frequency_penalty: 0, presence_penalty: 0, logit_bias: {}, logprobs: false, tools: [], tool_choice: "none", n: 1, user: "u-1", metadata: { a: "b" }, store: false, response_format: { type: "text" } };
    expect(unsupportedChatField(body)).toBeUndefined();
    expect(unsupportedChatField({ ...body, frequency_penalty: 0.1 })).toMatchObject({ param: "frequency_penalty" });
  });
});
