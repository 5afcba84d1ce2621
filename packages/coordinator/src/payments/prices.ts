import { readFileSync } from "node:fs";
import { z } from "zod";
import { TesseraError } from "@tessera/protocol";

/**
 * What a model costs and what serving it earns, in micro-USDC (1e-6 USDC) per 1,000 tokens. Clients pay
 * `input_per_1k` / `output_per_1k` (output costs about 4× input, as the seed prices it); the operator gets that less
 * the platform fee, plus `reward_*_per_1k` from the reward pool the coordinator's owner funds. A free network sets the
 * client prices to 0 and pays contributors rewards only.
 */
export interface Price {
  input_per_1k: number;
  output_per_1k: number;
  reward_input_per_1k: number;
  reward_output_per_1k: number;
}

const micro = z.number().int().min(0).max(1_000_000_000);
const PriceEntry = z
  .object({ input_per_1k: micro, output_per_1k: micro, reward_input_per_1k: micro.default(0), reward_output_per_1k: micro.default(0) })
  .strict();

/**
 * The price table file: `default`, exact `models` entries, and `size_classes` for models without one (the first class
 * whose `max_gb` covers the model file's size, as its nodes report it), e.g.
 *   { "default": { "input_per_1k": 100, "output_per_1k": 400 },
 *     "size_classes": [ { "max_gb": 8, "input_per_1k": 50, "output_per_1k": 200 } ],
 *     "models": { "tessera-demo": { "input_per_1k": 0, "output_per_1k": 0, "reward_output_per_1k": 10 } } }
 */
const PriceFile = z
  .object({
    default: PriceEntry,
    size_classes: z.array(PriceEntry.extend({ max_gb: z.number().positive().max(1e6) }).strict()).max(64).default([]),
    models: z.record(z.string().min(1).max(512), PriceEntry).default({}),
  })
  .strict();

export const FREE: Price = Object.freeze({ input_per_1k: 0, output_per_1k: 0, reward_input_per_1k: 0, reward_output_per_1k: 0 });

export class PriceTable {
  private readonly sizeClasses: ReadonlyArray<Price & { max_gb: number }>;

  constructor(
    private readonly fallback: Price = FREE,
    private readonly models: Readonly<Record<string, Price>> = {},
    sizeClasses: ReadonlyArray<Price & { max_gb: number }> = [],
  ) {
    this.sizeClasses = [...sizeClasses].sort((a, b) => a.max_gb - b.max_gb);
  }

  /** Reads and checks a price table file; `bad_request` naming the file and the field at fault. */
  static fromFile(path: string): PriceTable {
    let text: string;
    try {
      text = readFileSync(path, "utf8");
    } catch (err) {
      throw new TesseraError("bad_request", `--prices: cannot read ${path}: ${(err as Error).message}`);
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (err) {
      throw new TesseraError("bad_request", `--prices: ${path} is not JSON: ${(err as Error).message}`);
    }
    const parsed = PriceFile.safeParse(json);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      throw new TesseraError("bad_request", `--prices: ${path}: ${issue.path.join(".") || "(root)"}: ${issue.message} (prices are whole micro-USDC per 1,000 tokens)`);
    }
    return new PriceTable(parsed.data.default, parsed.data.models, parsed.data.size_classes);
  }

  /** The model's price: its own entry, else its size class (by the largest file a node reported), else the default. */
  priceOf(model: string, sizeBytes?: number): Price {
    const own = this.models[model];
    if (own) return own;
    if (sizeBytes !== undefined) {
      const gb = sizeBytes / 1e9;
      const cls = this.sizeClasses.find((c) => gb <= c.max_gb);
      if (cls) return { input_per_1k: cls.input_per_1k, output_per_1k: cls.output_per_1k, reward_input_per_1k: cls.reward_input_per_1k, reward_output_per_1k: cls.reward_output_per_1k };
    }
    return this.fallback;
  }
}

/** Micro-USDC for `tokens` at `per1k`, rounded up (a client is never charged less than a whole micro-unit it used). */
export function costOf(tokens: number, per1k: number): number {
  return Math.ceil((tokens * per1k) / 1000);
}

/** The same, rounded down: what the reward pool pays (it never pays a fraction it does not owe). */
export function rewardOf(tokens: number, per1k: number): number {
  return Math.floor((tokens * per1k) / 1000);
}

/** `1.5` USDC as a string from micro-units, exact (no float rounding). */
export function usdc(micro: number): string {
  const sign = micro < 0 ? "-" : "";
  const abs = Math.abs(micro);
  const whole = Math.floor(abs / 1e6);
  const frac = String(abs % 1e6).padStart(6, "0").replace(/0+$/, "");
  return `${sign}${whole}${frac ? `.${frac}` : ""}`;
}

/** `"10"`, `"0.5"` → micro-units; bad_request for anything else (negative, more than 6 decimals, not a number). */
export function parseUsdc(text: string, what: string): number {
  const m = /^(\d{1,12})(?:\.(\d{1,6}))?$/.exec(text.trim());
  if (!m) throw new TesseraError("bad_request", `${what} must be an amount of USDC like 10 or 2.50 (at most 6 decimals), got "${text}"`);
  return Number(m[1]) * 1e6 + Number((m[2] ?? "").padEnd(6, "0"));
}
