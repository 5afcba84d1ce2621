import { readFile } from "node:fs/promises";
import type { Command } from "commander";
import { type ErrorCode, Receipt, type ReceiptVerification, TesseraError, isErrorCode, parsePublicKey, verifyReceipt } from "@tessera/protocol";
import { loadClientSettings } from "../config.js";
import { printJson } from "../output.js";
import { withClientOptions } from "./client-options.js";

/**
 * `tessera receipt verify FILE|ID` (docs/receipts.md): checks a receipt's two signatures, the platform's and the
 * node's, offline. A FILE is a receipt as JSON; an ID (a UUID, when no file has that name) is fetched from the
 * coordinator with the client's API key first. Exit 0 when the receipt is valid, 1 when it is not. Bad input is an
 * error with a stable code, never a verdict: no such file or receipt (`not_found`), a file that is not JSON or not a
 * receipt, a bad --platform-key (`bad_request`).
 */
const RECEIPT_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** Far more than any receipt: a bigger file is not one. */
const MAX_FILE_BYTES = 64 * 1024;

interface VerifyFlags {
  url?: string;
  coordinator?: string;
  apiKey?: string;
  platformKey?: string;
  json?: boolean;
}

type PlatformPin = "flag" | "coordinator" | "none";

export function addReceiptCommand(program: Command): void {
  const receipt = program.command("receipt").description("work with receipts (one per node per job, signed by the node and the platform)");
  withClientOptions(
    receipt
      .command("verify")
      .description("check a receipt's platform and node signatures; FILE is a receipt as JSON, ID is fetched from the coordinator")
      .argument("<file-or-id>", "a JSON file holding a receipt, or a receipt id (UUID)")
      .option("--coordinator <url>", "the same as --url")
      .option("--platform-key <hex|npub>", "the platform key the receipt must be signed by (default: for an ID, the coordinator's)")
      .option("--json", "print JSON"),
  ).action(async (target: string, flags: VerifyFlags) => {
    const expected = flags.platformKey === undefined ? undefined : parsePublicKey(flags.platformKey.trim());
    if (flags.platformKey !== undefined && expected === undefined) throw new TesseraError("bad_request", "--platform-key must be a public key: 64 hex digits or npub1…");
    const fromFile = await readReceiptFile(target);
    let input: unknown;
    let pin: PlatformPin = expected === undefined ? "none" : "flag";
    let platformKey = expected;
    if (fromFile !== undefined) {
      input = fromFile;
    } else {
      const settings = loadClientSettings({ url: flags.url ?? flags.coordinator, apiKey: flags.apiKey });
      input = await getJson(settings, `/api/v1/receipts/${target.toLowerCase()}`, `no receipt ${target} that this API key may read`);
      if (platformKey === undefined) {
        const answer = await getJson(settings, "/api/v1/platform-key", "the coordinator has no platform key yet").catch((err: unknown) => {
          if (err instanceof TesseraError && err.code === "not_found") return undefined;
          throw err;
        });
        const key = (answer as { platform_key?: unknown } | undefined)?.platform_key;
        if (typeof key === "string" && parsePublicKey(key)) {
          platformKey = parsePublicKey(key);
          pin = "coordinator";
        }
      }
    }
    const parsed = Receipt.safeParse(input);
    if (!parsed.success) {
      const first = parsed.error.issues[0];
      throw new TesseraError("bad_request", `${fromFile !== undefined ? target : "the coordinator's answer"} is not a receipt: ${first ? `${first.path.join(".") || "(root)"}: ${first.message}` : "malformed"}`);
    }
    const result = verifyReceipt(parsed.data, platformKey === undefined ? {} : { platformKey });
    print(parsed.data, result, pin, flags.json === true);
    process.exitCode = result.valid ? 0 : 1;
  });
}

/** The file's JSON; undefined when there is no such file and `target` is a receipt id. */
async function readReceiptFile(target: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(target, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT" && RECEIPT_ID.test(target)) return undefined;
    if (code === "ENOENT") throw new TesseraError("not_found", `no file ${target} (and it is not a receipt id, which is a UUID)`);
    if (code === "EISDIR") throw new TesseraError("bad_request", `${target} is a directory, not a receipt file`);
    throw new TesseraError("bad_request", `cannot read ${target}: ${code ?? (err instanceof Error ? err.message : String(err))}`);
  }
  if (Buffer.byteLength(text) > MAX_FILE_BYTES) throw new TesseraError("bad_request", `${target} is not a receipt: larger than ${MAX_FILE_BYTES / 1024} KiB`);
  try {
    return JSON.parse(text);
  } catch {
    throw new TesseraError("bad_request", `${target} is not JSON`);
  }
}

/** GET with the client's key; errors keep the coordinator's code (a 404 says `notFound` in words). */
async function getJson(settings: { url: string; apiKey?: string | undefined }, path: string, notFound: string): Promise<unknown> {
  const url = settings.url.replace(/\/$/, "") + path;
  let res: Response;
  try {
    res = await fetch(url, { headers: settings.apiKey ? { authorization: `Bearer ${settings.apiKey}` } : {} });
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    throw new TesseraError("unreachable", `coordinator unreachable at ${settings.url}: ${cause?.code ?? cause?.message ?? (err as Error).message}`, { cause: err });
  }
  let body: unknown;
  try {
    body = await res.json();
  } catch {
    throw new TesseraError(res.ok ? "bad_request" : res.status >= 500 ? "internal_error" : "bad_request", `the coordinator answered ${path} with HTTP ${res.status} and no JSON`);
  }
  if (res.ok) return body;
  const { error, error_message } = (body ?? {}) as { error?: unknown; error_message?: unknown };
  const code: ErrorCode = isErrorCode(error) ? error : res.status >= 500 ? "internal_error" : "bad_request";
  throw new TesseraError(code, code === "not_found" ? notFound : typeof error_message === "string" ? error_message : `HTTP ${res.status}`);
}

const PIN_TEXT: Record<PlatformPin, string> = {
  flag: "pinned with --platform-key",
  coordinator: "the coordinator's platform key",
  none: "not pinned: checked against the key the receipt names (pass --platform-key to pin it)",
};

function print(r: Receipt, result: ReceiptVerification, pin: PlatformPin, json: boolean): void {
  if (json) {
    printJson({ receipt_id: r.receipt_id, valid: result.valid, platform: result.platform, node: result.node, platform_key: r.platform_key, platform_key_pinned: pin, node_id: r.node_id, status: r.status, problems: result.problems });
    return;
  }
  const lines = [
    `receipt ${r.receipt_id}: ${result.valid ? "VALID" : "NOT VALID"}`,
    `  job        ${r.job_id} (segment ${r.segment}), ${r.model}, ${r.input_tokens} in / ${r.output_tokens} out`,
    `  amount     ${r.amount} micro-USDC (fee ${r.fee}, reward ${r.reward}), status ${r.status}`,
    `  platform   ${result.platform}  key ${r.platform_key} (${PIN_TEXT[pin]})`,
    `  node       ${result.node}  key ${r.node_id}`,
    ...result.problems.map((p) => `  problem: ${p}`),
  ];
  process.stdout.write(`${lines.join("\n")}\n`);
}
