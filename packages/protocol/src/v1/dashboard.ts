import { z } from "zod";
import type { DrainReason } from "./drain-reason.js";
import type { EarningsView } from "./earnings.js";
import { NodeReputation, NodeTier } from "./node-view.js";

/**
 * The dashboard's own API under `/dashboard/api/` (packages/coordinator/src/dashboard/). Everything else the
 * dashboard shows comes from the public API, called through the session (`/dashboard/api/v1/…` → `/api/v1/…`).
 */

/** The session cookie (HttpOnly, SameSite=Strict) and the header every state-changing request repeats its CSRF token in. */
export const DASHBOARD_SESSION_COOKIE = "tessera_session";
export const DASHBOARD_CSRF_HEADER = "x-tessera-csrf";

/**
 * A dashboard login link (`tessera dashboard login`) carries an operator token (operator-token.ts) whose lifetime is
 * at most this; it signs its node's operator in once. Signed by the coordinator's platform key instead (`tessera
 * dashboard login --owner`, on the coordinator's machine), it signs the owner in.
 */
export const DASHBOARD_LOGIN_LINK_MAX_TTL_SECONDS = 15 * 60;
export const DASHBOARD_LOGIN_LINK_TTL_SECONDS = 5 * 60;

/**
 * `POST /dashboard/api/session`: sign in with an API key (clients), a login link's operator token (operators), or
 * (open networks only) as a guest without either.
 */
export const DashboardSignIn = z.union([
  z.strictObject({ api_key: z.string().min(1).max(256) }),
  z.strictObject({ login_link: z.string().min(1).max(512) }),
  z.strictObject({ guest: z.literal(true) }),
]);
export type DashboardSignIn = z.infer<typeof DashboardSignIn>;

/** `GET /dashboard/api/session` (always 200) and the answer to a sign-in. */
export interface DashboardSessionView {
  signed_in: boolean;
  /** The coordinator serves callers without a key (`--open`). */
  open: boolean;
  kind?: "client" | "guest" | "operator" | "admin";
  /** An operator session's operator key (hex), and the node whose key signed its login link. */
  operator?: { id: string; node_id: string };
  /** The API key the session acts as (never its token). */
  key?: { id: string; name: string };
  /** Repeat in `x-tessera-csrf` on every POST, PUT, PATCH and DELETE. */
  csrf_token?: string;
  expires_at?: string;
}

/** `POST /dashboard/api/keys`. */
export const DashboardKeyCreate = z.strictObject({
  name: z.string().regex(/^[\w.@-]{1,64}$/, "1-64 letters, digits, '.', '_', '-' or '@'"),
});
export type DashboardKeyCreate = z.infer<typeof DashboardKeyCreate>;

export interface DashboardKeyView {
  id: string;
  name: string;
  created_at: string;
  last_used_at: string | null;
  rate_limit_per_minute: number;
  /** The key this session signed in with. */
  current: boolean;
}

/** The answer to a key creation: the only time the token is shown. */
export interface DashboardKeyCreated extends DashboardKeyView {
  token: string;
}

/** One node as the Nodes page shows it: what it announced about itself, and its standing. */
export interface DashboardNode {
  node_id: string;
  status: "online" | "offline";
  /** `serving`, `draining` (its owner is back, or it is leaving) or `offline`. */
  state: "serving" | "draining" | "offline";
  /** Why a draining node stepped aside, as it said (drain-reason.ts; `unspecified` when it did not); null otherwise. */
  drain_reason: DrainReason | null;
  operator: string;
  version: string;
  /** The hardware class the node announced (`>=24gb`, `cpu`, …), or null when it sent none. */
  hardware_class: string | null;
  cpu_cores: number;
  ram_mb: number;
  gpus: Array<{ name: string; vram_mb: number }>;
  models: string[];
  active_jobs: number;
  max_concurrency: number;
  last_seen_at: string;
  tier: NodeTier;
  reputation: NodeReputation;
  checks: { passed: number; failed: number };
  quarantined: boolean;
}

/** One sample of the network, as the Network page charts it. */
export interface DashboardNetworkSample {
  /** ISO 8601. */
  at: string;
  nodes_online: number;
  models: number;
  jobs_in_flight: number;
  jobs_pending: number;
  /** Jobs that ended per minute over the last minute (all outcomes); null until the samples span 10 s. */
  jobs_per_minute: number | null;
  /** Completion tokens served per second over the same span (the coordinator's own count); null until it spans 10 s. */
  tokens_per_second: number | null;
  /** The sum, over online nodes, of each node's best measured decode speed: what the network can generate at once. */
  capacity_tokens_per_second: number;
}

/** `GET /dashboard/api/network`, and the `network` event of `GET /dashboard/api/events`. */
export interface DashboardNetwork {
  now: DashboardNetworkSample;
  /** Earlier samples, oldest first (at most an hour, one per sampling interval). */
  history: DashboardNetworkSample[];
}

/** `GET /dashboard/api/nodes`, and the `nodes` event of `GET /dashboard/api/events`. */
export interface DashboardNodes {
  nodes: DashboardNode[];
}

/**
 * `GET /dashboard/api/operator` (an operator session): the operator's nodes and its earnings. `earnings` is the
 * same view as `GET /api/v1/payouts/earnings` (coordinator routes/payouts-earnings.ts).
 */
export interface DashboardOperatorView {
  operator_id: string;
  /** Each node with `jobs_served`: the jobs it completed work for over its life here (its receipts, one per job). */
  nodes: Array<DashboardNode & { jobs_served: number }>;
  earnings: EarningsView;
  /** Where payouts go, most recently set first (the first is used), as `GET /api/v1/payouts/addresses`. */
  payout_addresses: DashboardPayoutAddress[];
  default_chain: string;
}

export interface DashboardPayoutAddress {
  chain: string;
  address: string;
  /** The most recently set address: where payouts go. */
  default: boolean;
  updated_at: string;
}

/** `PUT /dashboard/api/operator/payout-addresses/:chain` (an operator session): as `tessera payout set`. */
export const DashboardPayoutAddressSet = z.strictObject({ address: z.string().min(1).max(200) });
export type DashboardPayoutAddressSet = z.infer<typeof DashboardPayoutAddressSet>;

/**
 * `POST /dashboard/api/operator/payout-requests` (an operator session): as `tessera payout request` — be paid at the
 * next settlement pass, to the chain's address when `chain` is given (it becomes the payout address), else to the
 * default one. The answer is the public API's `PayoutRequestView` (202).
 */
export const DashboardPayoutRequest = z.strictObject({ chain: z.string().min(1).max(32).optional() });
export type DashboardPayoutRequest = z.infer<typeof DashboardPayoutRequest>;

/** `POST /dashboard/api/admin/operators/:id` (the owner): approve (or unban) with `active`, ban with `banned`. */
export const DashboardOperatorStatusChange = z.strictObject({
  status: z.enum(["active", "banned"]),
  reason: z.string().max(200).optional(),
});
export type DashboardOperatorStatusChange = z.infer<typeof DashboardOperatorStatusChange>;

export interface DashboardAdminOperator {
  id: string;
  status: "active" | "pending" | "banned";
  admitted_via: string;
  nodes: number;
  since: string;
  reason: string | null;
}

/** `GET /dashboard/api/admin` (the owner): operators (the admission queue is those `pending`), payouts asked for, batches. */
export interface DashboardAdminView {
  admission: string;
  operators: DashboardAdminOperator[];
  payout_requests: Array<{ operator_id: string; requested_at: string }>;
  payout_batches: Array<{ id: string; chain: string; status: string; total: number; operators: number; tx_hash: string | null; error: string | null; created_at: string }>;
  /** Chains this coordinator pays out on (an RPC URL, a vault and the payer key configured); empty: it settles nowhere. */
  settlement_chains: string[];
  /** When payouts run on their own (`--payout-schedule`: hourly, daily, weekly or off), and the next run (null: off). */
  payout_schedule: string;
  next_payout_at: string | null;
  join_tokens: DashboardJoinToken[];
  /** Nodes in quarantine: the owner may release them. */
  quarantined_nodes: Array<{ node_id: string; operator: string; status: "online" | "offline"; checks: { passed: number; failed: number } }>;
}

/** A join token as the owner sees it: never the token itself (only its hash is stored). */
export interface DashboardJoinToken {
  id: string;
  state: "valid" | "used up" | "expired" | "revoked";
  uses: number;
  max_uses: number;
  note: string | null;
  created_at: string;
  expires_at: string;
}

/** `POST /dashboard/api/admin/join-tokens` (the owner): as `tessera coordinator join-tokens create`. */
export const DashboardJoinTokenCreate = z.strictObject({
  uses: z.number().int().min(1).max(100_000).default(1),
  /** How long it is valid, in seconds: a minute to 365 days (the CLI's `--expires`). */
  expires_in_seconds: z.number().int().min(60).max(365 * 86_400).default(86_400),
  note: z.string().regex(/^[\p{L}\p{N} .,:;@#_+\-/()]{1,200}$/u, "note must be 1-200 letters, digits, spaces or simple punctuation").optional(),
});
export type DashboardJoinTokenCreate = z.infer<typeof DashboardJoinTokenCreate>;

/** The answer to a join token creation: the only time the token is shown. */
export interface DashboardJoinTokenCreated extends DashboardJoinToken {
  token: string;
}

/** `POST /dashboard/api/admin/nodes/:id/release` (the owner): as `tessera coordinator nodes release`. */
export const DashboardQuarantineReleaseRequest = z.strictObject({ reason: z.string().max(200).optional() });
export type DashboardQuarantineReleaseRequest = z.infer<typeof DashboardQuarantineReleaseRequest>;
