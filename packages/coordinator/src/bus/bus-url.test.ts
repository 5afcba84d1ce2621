import { describe, expect, it } from "vitest";
import { parseBusUrl } from "./bus-url.js";

describe("parseBusUrl", () => {
  it("takes the credentials out of the URL, decoded, and shows it without the secret", () => {
    expect(parseBusUrl("nats://127.0.0.1:4222")).toEqual({ server: "nats://127.0.0.1:4222", shown: "nats://127.0.0.1:4222", auth: undefined });
    expect(parseBusUrl("nats://replica:s%40cret%2F1@nats.internal:4222")).toEqual({
      server: "nats://nats.internal:4222",
      shown: "nats://replica:***@nats.internal:4222",
      auth: { user: "replica", pass: "s@cret/1" },
    });
    expect(parseBusUrl("tls://t0ken-1@[::1]:4443")).toEqual({ server: "tls://[::1]:4443", shown: "tls://***@[::1]:4443", auth: { token: "t0ken-1" } });
    expect(parseBusUrl("nats://nats.internal")).toMatchObject({ server: "nats://nats.internal", auth: undefined });
  });

  it("refuses what is not a NATS address with bad_request, never echoing a secret", () => {
    for (const bad of ["http://127.0.0.1:4222", "nats://127.0.0.1:4222/x", "nats://127.0.0.1:0", "nats://127.0.0.1:70000", "nats://", "nats://a b:4222", "nats://u:p@@host:4222", "nats://u:hunter2@host:4222?x=1"]) {
      let error: unknown;
      try {
        parseBusUrl(bad);
      } catch (err) {
        error = err;
      }
      expect(error, bad).toMatchObject({ code: "bad_request", message: expect.stringMatching(/^--bus \(TESSERA_BUS\) must be nats:\/\/\[user:password@ or token@\]host:port/) });
      expect((error as Error).message).not.toMatch(/hunter2|u:p/);
    }
    expect(() => parseBusUrl("nats://u:%E0%A4%A@host:4222")).toThrow(expect.objectContaining({ code: "bad_request", message: '--bus (TESSERA_BUS): the password in "nats://***@host:4222" is not valid percent-encoding' }));
  });
});
