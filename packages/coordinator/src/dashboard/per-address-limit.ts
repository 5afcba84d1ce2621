import type { FastifyRequest } from "fastify";
import { TesseraError } from "@tessera/protocol";
import type { DashboardDeps } from "./deps.js";

/** Sign-ins and key creations per address per minute: sessions and keys are cheap to ask for and must not flood. */
export const SIGN_INS_PER_MINUTE = 30;
export const KEYS_PER_MINUTE = 10;

export function limitPerAddress(deps: Pick<DashboardDeps, "limiter" | "clock">, request: FastifyRequest, what: "sign-in" | "key", perMinute: number): void {
  const decision = deps.limiter.take(`dashboard-${what}:${request.ip}`, perMinute, deps.clock.now());
  if (!decision.allowed) {
    throw new TesseraError("rate_limited", `more than ${perMinute} dashboard ${what === "key" ? "key creations" : "sign-ins"} per minute from this address; retry in ${decision.resetSeconds} s`, {
      retryAfterSeconds: decision.resetSeconds,
    });
  }
}
