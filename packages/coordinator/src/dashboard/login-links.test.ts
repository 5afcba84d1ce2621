import { afterEach, expect, it } from "vitest";
import { createOperatorToken, generateKeyPair, secretKeySigner } from "@tessera/protocol";
import { ManualClock } from "../clock.js";
import { createLogger } from "../logger.js";
import { SharedNonces } from "../replicas/shared-nonces.js";
import { openStore } from "../store/index.js";
import type { Store } from "../store/types.js";
import { LoginLinks } from "./login-links.js";

/**
 * A login link signs in once in the whole cluster: two replicas' LoginLinks over one shared record of used tokens
 * (the replicas' shared nonces, on one store) refuse on B the link A accepted, and each accepts a link of its own.
 */
let store: Store | undefined;
afterEach(async () => {
  await store?.close();
  store = undefined;
});

it("accepts a login link once across replicas sharing the record of used tokens", async () => {
  store = await openStore({ sqlitePath: ":memory:" });
  const clock = new ManualClock(1_800_000_000_000);
  const shared = new SharedNonces(store, clock, createLogger("silent"));
  const [a, b] = [new LoginLinks(clock, shared), new LoginLinks(clock, shared)];
  const signer = secretKeySigner(generateKeyPair().secretKeyHex);
  const link = () => createOperatorToken(signer, { nowSeconds: clock.now() / 1000, ttlSeconds: 300 });

  const first = link();
  expect(await a.redeem(first)).toEqual({ ok: true, nodeId: signer.publicKeyHex });
  expect(await b.redeem(first)).toMatchObject({ ok: false, message: expect.stringMatching(/used already/) });
  expect(await a.redeem(first)).toMatchObject({ ok: false, message: expect.stringMatching(/used already/) });

  clock.advance(1_000);
  const second = link();
  expect(await b.redeem(second)).toEqual({ ok: true, nodeId: signer.publicKeyHex });
  expect(await a.redeem(second)).toMatchObject({ ok: false });
  // Alone (no shared record), a process still refuses its own second use.
  const alone = new LoginLinks(clock);
  clock.advance(1_000);
  const third = link();
  expect(await alone.redeem(third)).toMatchObject({ ok: true });
  expect(await alone.redeem(third)).toMatchObject({ ok: false });
});
