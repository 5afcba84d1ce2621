import { execFile } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { promisify } from "node:util";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Browser, type Page, chromium } from "playwright-core";
import { type Cluster, makeTinyModel, startCluster } from "@tessera/testkit";

/**
 * The dashboard in a real browser (Debian's Chromium driven by playwright-core) against a real coordinator and a
 * real daemon running the embedded engine on a generated model: every page shows real data, the playground streams
 * visible tokens and names the node, an API key is made in the page, used from outside it, and revoked, a bad
 * sign-in is refused. Screenshots of each page go to docs/dashboard/. Without Chromium the tests skip with a
 * printed notice; under CI=true (where .ci/run installs it) they are mandatory.
 */
const CHROMIUM = "/usr/bin/chromium";
const SCREENSHOTS = fileURLToPath(new URL("../../../docs/dashboard/", import.meta.url));
const BUILD = fileURLToPath(new URL("../dist/index.html", import.meta.url));
const TESSERA_BIN = fileURLToPath(new URL("../../cli/bin/tessera.js", import.meta.url));

let skipReason: string | undefined;
let dir: string;
let cluster: Cluster;
let browser: Browser;
let page: Page;

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) {
    skipReason = `no Chromium at ${CHROMIUM} (apt-get install chromium)`;
    if (process.env.CI === "true") throw new Error(`dashboard browser tests are mandatory under CI=true: ${skipReason}`);
    process.stderr.write(`\n*** dashboard.browser.test.ts SKIPPED: ${skipReason} ***\n\n`);
    return;
  }
  if (!existsSync(BUILD)) throw new Error("the dashboard is not built: run `npm run build:dashboard` (npm install and npm run build do it)");
  dir = mkdtempSync(join(tmpdir(), "tessera-dashboard-e2e-"));
  const modelPath = join(dir, "tessera-tiny.gguf");
  await makeTinyModel({ path: modelPath, seed: 42, vocab: "spm" });
  cluster = await startCluster({ nodes: 1, modelPath });
  // Root in a container: Chromium's sandbox needs user namespaces it may not have.
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
  page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  page.on("dialog", (dialog) => void dialog.accept());
  mkdirSync(SCREENSHOTS, { recursive: true });
}, 240_000);

afterAll(async () => {
  await browser?.close();
  await cluster?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function open(path: string): Promise<void> {
  await page.goto(`${cluster.url}/#${path}`);
  await page.locator("main h1").first().waitFor();
}

async function shot(name: string): Promise<void> {
  await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true });
}

/** Every form control on the page has an accessible name (a label, aria-label or text). */
async function unlabelledControls(): Promise<string[]> {
  // In-page code as text: this file is type-checked as Node code, without the DOM's types.
  return page.evaluate(`[...document.querySelectorAll("input, select, textarea, button")]
    .filter((el) => !(el.closest("label") || el.getAttribute("aria-label") || (el.id && document.querySelector('label[for="' + el.id + '"]'))
      || (el.tagName === "BUTTON" && el.textContent.trim())))
    .map((el) => el.outerHTML.slice(0, 80))`);
}

async function apiAs(token: string, method: string, path: string, body?: unknown) {
  const res = await fetch(cluster.url + path, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: res.status, json: (await res.json()) as any };
}

describe("the dashboard in Chromium", () => {
  it("shows the network, its models and its nodes with real data, live", async (ctx) => {
    if (skipReason) return ctx.skip();
    await open("/");
    await expect.poll(() => page.getByTestId("nodes-online").textContent(), { timeout: 15_000 }).toBe("1");
    expect(await page.getByTestId("models-count").textContent()).toBe("1");
    await page.getByText("Live: updates every few seconds.").waitFor();
    expect(await page.locator("figure.chart canvas").count()).toBe(4);
    expect(await unlabelledControls()).toEqual([]);

    await page.getByRole("link", { name: "Models" }).click();
    await page.getByTestId("model-row").filter({ hasText: cluster.model! }).waitFor();
    expect(await page.getByTestId("model-row").first().locator("td").first().textContent()).toBe("1");
    // Its one node holds the whole model: not sharded (the API test covers a sharded one's stages).
    expect(await page.getByTestId("model-layout").first().textContent()).toBe("whole on each node");
    await shot("models");

    await page.getByRole("link", { name: "Nodes", exact: true }).click();
    const row = page.locator(`[data-node-id="${cluster.nodes[0]!.id}"]`);
    await row.waitFor();
    // Serving: "enrolled" (a node that stepped aside reads "away" and why; the API test covers the reasons).
    expect(await row.textContent()).toContain("enrolled");
    expect(await row.textContent()).toContain("probation");
    expect(await row.textContent()).toContain(cluster.model!);
  }, 60_000);

  it("refuses a bad sign-in and says why", async (ctx) => {
    if (skipReason) return ctx.skip();
    await open("/signin");
    await page.getByLabel("API key").fill("tsk_this-is-not-a-key");
    await page.getByRole("button", { name: "Sign in" }).click();
    await expect.poll(() => page.getByRole("alert").textContent()).toContain("unknown or revoked API key (unauthorized)");
    expect(await page.getByTestId("signed-in-as").count()).toBe(0);
    expect(await unlabelledControls()).toEqual([]);
    await shot("sign-in");
  }, 30_000);

  let token = "";
  let jobId = "";

  it("makes an API key (shown once) that works from outside the page", async (ctx) => {
    if (skipReason) return ctx.skip();
    await open("/signin");
    await page.getByRole("button", { name: "Continue as guest" }).click();
    await expect.poll(() => page.getByTestId("signed-in-as").textContent()).toBe("Guest");
    await open("/keys");
    await page.getByLabel("New key name").fill("browser-test");
    await page.getByRole("button", { name: "Create key" }).click();
    token = await page.getByTestId("new-token").inputValue();
    expect(token).toMatch(/^tsk_/);
    await page.locator('[data-key-name="browser-test"]').waitFor();
    expect(await unlabelledControls()).toEqual([]);
    await shot("api-keys");
    await page.getByRole("button", { name: "I stored it" }).click();
    expect(await page.getByTestId("new-token").count()).toBe(0);

    // Used the way curl would: a job made with the key belongs to it.
    const job = await apiAs(token, "POST", "/api/v1/jobs", { model: cluster.model, messages: [{ role: "user", content: "Hello" }], max_tokens: 16, temperature: 0 });
    expect(job.status).toBe(202);
    jobId = job.json.id;
    await expect.poll(async () => (await apiAs(token, "GET", `/api/v1/jobs/${jobId}`)).json.status, { timeout: 30_000 }).toBe("completed");
  }, 60_000);

  it("signs in with that key: its jobs, the playground streaming visible tokens from a named node, billing", async (ctx) => {
    if (skipReason) return ctx.skip();
    if (!token) throw new Error("needs the API key the key test makes (it failed)");
    await open("/signin");
    await page.getByLabel("API key").fill(token);
    await page.getByRole("button", { name: "Sign in" }).click();
    await expect.poll(() => page.getByTestId("signed-in-as").textContent()).toBe("Key browser-test");

    await open("/jobs");
    const jobRow = page.getByTestId("job-row").filter({ hasText: jobId.slice(0, 8) });
    await jobRow.waitFor();
    expect(await jobRow.textContent()).toContain("completed");
    await jobRow.getByRole("button").click();
    await expect.poll(async () => ((await page.getByTestId("job-stream").textContent()) ?? "").length).toBeGreaterThan(0);
    // The list is live (the coordinator's event stream, no polling): a job made outside the page appears, then completes.
    await page.getByTestId("jobs-live").filter({ hasText: "Live" }).waitFor();
    const outside = await apiAs(token, "POST", "/api/v1/jobs", { model: cluster.model, messages: [{ role: "user", content: "Again" }], max_tokens: 8, temperature: 0 });
    expect(outside.status).toBe(202);
    const outsideRow = page.getByTestId("job-row").filter({ hasText: (outside.json.id as string).slice(0, 8) });
    await outsideRow.waitFor({ timeout: 15_000 });
    await expect.poll(() => outsideRow.textContent(), { timeout: 30_000 }).toContain("completed");
    await shot("jobs");

    await open("/playground");
    await expect.poll(() => page.getByLabel("Model").inputValue()).toBe(cluster.model);
    await page.getByLabel("Max tokens").fill("96");
    await page.getByLabel("Temperature").fill("0");
    await page.getByLabel("Message").fill("Tell me about the sea.");
    // Record every text the answer shows on its way, to see it grow token by token rather than appear at once.
    await page.evaluate(`(() => {
      const seen = (window.seen = []);
      new MutationObserver(() => {
        const said = document.querySelector('[data-testid="turn-assistant"] .said')?.textContent ?? "";
        if (said && said !== "…" && seen.at(-1) !== said) seen.push(said);
      }).observe(document.querySelector("main"), { subtree: true, childList: true, characterData: true });
    })()`);
    await page.getByRole("button", { name: "Send" }).click();
    const answeredBy = page.getByTestId("answered-by");
    await answeredBy.waitFor({ timeout: 60_000 }).catch(async (err: unknown) => {
      throw new Error(`${String(err)}\npage shows:\n${await page.locator("main").innerText()}\n${cluster.logs()}`);
    });
    expect(await answeredBy.textContent()).toContain(cluster.nodes[0]!.id.slice(0, 8));
    const seen = await page.evaluate<string[]>("window.seen");
    expect(seen.length).toBeGreaterThan(1);
    for (let i = 1; i < seen.length; i++) expect(seen[i]!.startsWith(seen[i - 1]!)).toBe(true);
    expect(await unlabelledControls()).toEqual([]);
    await shot("playground");

    // Tools: a list that is not a JSON array is refused in the page, and nothing is sent.
    await page.getByRole("button", { name: "Clear" }).click();
    await page.getByLabel("Tools (a JSON array of functions").fill('{"type": "function"}');
    expect(await page.getByTestId("tools-check").textContent()).toContain("must be a JSON array");
    await page.getByLabel("Message").fill("Weather in Lima?");
    await page.getByRole("button", { name: "Send" }).click();
    await expect.poll(() => page.getByRole("alert").textContent()).toContain("must be a JSON array");
    expect(await page.getByTestId("turn-assistant").count()).toBe(0);
    // The example tool, which the model must call (tool_choice required: the embedded engine constrains its output
    // to a call, so even the generated test model makes one): the call is shown with its arguments.
    await page.getByRole("button", { name: "Use an example tool" }).click();
    expect(await page.getByTestId("tools-check").textContent()).toContain("1 tool: get_weather");
    await page.getByLabel("Tool choice").selectOption("required");
    await page.getByLabel("Max tokens").fill("256");
    await page.getByRole("button", { name: "Send" }).click();
    await page.getByTestId("tool-call").first().waitFor({ timeout: 60_000 }).catch(async (err: unknown) => {
      throw new Error(`${String(err)}\npage shows:\n${await page.locator("main").innerText()}\n${cluster.logs()}`);
    });
    expect(await page.getByTestId("tool-call-name").first().textContent()).toBe("get_weather");
    expect(await page.getByTestId("tool-call").first().textContent()).toMatch(/"city": "(Paris|Lagos|Lima)"/);
    await page.getByTestId("answered-by").waitFor({ timeout: 30_000 });
    // The message box now answers the call: what is typed goes back as the tool's result.
    await page.getByLabel("Result of get_weather").waitFor();
    expect(await unlabelledControls()).toEqual([]);
    await shot("playground-tools");

    await open("/billing");
    await page.getByTestId("balance").waitFor();
    expect(await page.getByTestId("balance").textContent()).toMatch(/USDC$/);
    await shot("billing");
  }, 120_000);

  it("revokes the key: the page signs out, the key stops being one, signing in with it is refused", async (ctx) => {
    if (skipReason) return ctx.skip();
    if (!token) throw new Error("needs the API key the key test makes (it failed)");
    await open("/keys");
    await page.getByRole("button", { name: "Revoke key browser-test" }).click();
    await expect.poll(() => page.getByTestId("signed-in-as").count()).toBe(0);
    // On this open network a revoked token is served as an anonymous caller: the key's job is no longer its to see.
    expect((await apiAs(token, "GET", `/api/v1/jobs/${jobId}`)).status).toBe(404);
    await open("/signin");
    await page.getByLabel("API key").fill(token);
    await page.getByRole("button", { name: "Sign in" }).click();
    await expect.poll(() => page.getByRole("alert").textContent()).toContain("unknown or revoked API key");
  }, 30_000);

  it("signs an operator in with a one-time link from `tessera dashboard login`: its node, jobs served, earnings, payout address", async (ctx) => {
    if (skipReason) return ctx.skip();
    const node = cluster.nodes[0]!;
    const { stdout } = await promisify(execFile)(process.execPath, [TESSERA_BIN, "dashboard", "login", "--home", node.home, "--json"]);
    const { url } = JSON.parse(stdout) as { url: string };
    expect(url.startsWith(`${cluster.url}/#/login/tsop1.${node.id}.`)).toBe(true);
    // The node counts under its operator's key (its delegation), which the session signs in as.
    const listed = (await (await fetch(`${cluster.url}/dashboard/api/nodes`)).json()) as { nodes: Array<{ node_id: string; operator: string }> };
    const operator = listed.nodes.find((n) => n.node_id === node.id)!.operator;
    await page.goto(url);
    await expect.poll(() => page.getByTestId("signed-in-as").textContent(), { timeout: 15_000 }).toBe(`Operator ${operator.slice(0, 8)}…`);
    const row = page.locator(`[data-testid="my-node-row"][data-node-id="${node.id}"]`);
    await row.waitFor();
    expect(await row.textContent()).toContain("enrolled");
    await page.getByTestId("earnings-held").waitFor();
    // The jobs the tests ran were free (open network, no prices), so the receipts list them at 0.
    await page.getByTestId("receipt-row").first().waitFor();
    expect(page.url()).not.toContain("tsop1");
    // Lifetime jobs: the key's job and the playground's chat, at least, were served by this node.
    expect(Number(await row.getByTestId("jobs-served").textContent())).toBeGreaterThanOrEqual(2);

    // A payout address, as `tessera payout set --chain base --address …` sets it; a bad one is refused and says why.
    await page.getByLabel("Chain").selectOption("base");
    await page.getByLabel("Payout address", { exact: true }).fill("0x" + "0".repeat(40));
    await page.getByRole("button", { name: "Set address" }).click();
    await expect.poll(() => page.getByRole("alert").textContent()).toContain("zero address");
    await page.getByLabel("Payout address", { exact: true }).fill("0x52908400098527886e0f7030069857d2e4169ee7");
    await page.getByRole("button", { name: "Set address" }).click();
    await page.getByTestId("payout-address-row").first().waitFor();
    expect(await page.getByTestId("payout-address-row").first().textContent()).toContain("0x52908400098527886E0F7030069857D2E4169EE7");
    const signedWith = await promisify(execFile)(process.execPath, [TESSERA_BIN, "payout", "list", "--home", node.home, "--json"]);
    expect(signedWith.stdout).toContain("0x52908400098527886E0F7030069857D2E4169EE7");
    // Asking for a payout: this coordinator settles on no chain, so it is refused, and the page shows the code.
    expect(await page.getByTestId("request-payout").textContent()).toMatch(/^Request a payout of [\d.,]+ USDC$/);
    await page.getByTestId("request-payout").click();
    await expect.poll(() => page.getByRole("alert").textContent()).toMatch(/does not pay out on base .*\(bad_request\)$/);
    // Join tokens are the owner's; the page says so and how a new machine joins instead.
    expect(await page.getByTestId("join-token-note").textContent()).toContain("tessera operator delegate");
    expect(await unlabelledControls()).toEqual([]);
    await shot("my-nodes");

    // The link is spent: opening it again is refused, and says what to do.
    await page.goto(url);
    await expect.poll(() => page.getByRole("alert").textContent()).toContain("used already");
  }, 60_000);

  it("signs the owner in with a link from `tessera dashboard owner-login`: operators, join tokens, quarantine, settlement", async (ctx) => {
    if (skipReason) return ctx.skip();
    const { stdout } = await promisify(execFile)(process.execPath, [TESSERA_BIN, "dashboard", "owner-login", "--data-dir", join(cluster.dir, "coordinator"), "--url", cluster.url, "--json"]);
    await page.goto((JSON.parse(stdout) as { url: string }).url);
    await expect.poll(() => page.getByTestId("signed-in-as").textContent(), { timeout: 15_000 }).toBe("Owner");
    await page.locator('[data-testid="operator-row"]').first().waitFor();
    expect(await page.getByTestId("operator-row").first().textContent()).toContain("active");
    expect(await page.getByRole("button", { name: /^Ban operator / }).count()).toBe(1);
    await page.getByTestId("no-quarantine").waitFor();
    expect(await page.getByTestId("settlement-chains").textContent()).toContain("Pays out on no chain");

    // A join token, as `tessera coordinator join-tokens create` makes one: shown once, listed without it, revocable.
    await page.getByLabel("Uses").fill("3");
    await page.getByLabel("Valid for").selectOption({ label: "7 days" });
    await page.getByLabel("Note").fill("for the browser test");
    await page.getByRole("button", { name: "Create join token" }).click();
    const joinToken = await page.getByTestId("new-join-token").inputValue();
    expect(joinToken).toMatch(/^tsjt_/);
    const tokenRow = page.locator('[data-testid="join-token-row"][data-state="valid"]');
    await tokenRow.waitFor();
    expect(await tokenRow.textContent()).toContain("0 / 3");
    expect(await tokenRow.textContent()).not.toContain(joinToken);
    expect(await unlabelledControls()).toEqual([]);
    await shot("admin");
    const listed = await promisify(execFile)(process.execPath, [TESSERA_BIN, "coordinator", "join-tokens", "list", "--data-dir", join(cluster.dir, "coordinator"), "--json"]);
    expect(JSON.parse(listed.stdout)).toEqual([expect.objectContaining({ state: "valid", max_uses: 3, note: "for the browser test" })]);
    await tokenRow.getByRole("button", { name: /^Revoke join token / }).click();
    await page.locator('[data-testid="join-token-row"][data-state="revoked"]').waitFor();
    expect(await page.getByTestId("new-join-token").count()).toBe(0);
  }, 60_000);

  it("charts the jobs it has seen: jobs per minute, tokens served per second and the measured capacity", async (ctx) => {
    if (skipReason) return ctx.skip();
    await open("/");
    // Jobs per minute needs samples spanning 10 s; the measured speed comes from the jobs the tests ran.
    await expect.poll(() => page.getByTestId("jobs-per-minute").textContent(), { timeout: 30_000, interval: 1_000 }).not.toBe("—");
    expect(Number(await page.getByTestId("jobs-per-minute").textContent())).toBeGreaterThan(0);
    expect(Number(await page.getByTestId("tokens-per-second").textContent())).toBeGreaterThan(0);
    expect(Number(await page.getByTestId("capacity").textContent())).toBeGreaterThan(0);
    await shot("network");
  }, 60_000);

  it("is readable at phone width: nothing wider than the screen but the tables, which scroll", async (ctx) => {
    if (skipReason) return ctx.skip();
    await page.setViewportSize({ width: 390, height: 844 });
    for (const path of ["/", "/nodes", "/playground"]) {
      await open(path);
      await page.waitForTimeout(300);
      const overflow = await page.evaluate<number>("document.documentElement.scrollWidth - document.documentElement.clientWidth");
      expect({ path, overflow }).toEqual({ path, overflow: 0 });
    }
    await open("/");
    await expect.poll(() => page.getByTestId("nodes-online").textContent()).toBe("1");
    await shot("network-phone");
    // Keyboard: the skip link is the first stop, and the navigation is reachable and follows Enter.
    await page.keyboard.press("Tab");
    expect(await page.evaluate<string>("document.activeElement.textContent")).toBe("Skip to content");
    await page.setViewportSize({ width: 1280, height: 800 });
  }, 60_000);

  // Last: it adds a second node, which the tests above do not expect.
  it("shows a node that stepped aside as away, with the reason it gave: its owner came back", async (ctx) => {
    if (skipReason) return ctx.skip();
    // The idle policy reads this file instead of the machine (`--idle-probe-file`, tests only): absent, nobody is at
    // the keyboard, so the node enlists; {"active": true} is its owner typing.
    const probe = join(dir, "owner.json");
    const desk = await cluster.addNode({ nodeArgs: ["--idle-mode", "when-idle", "--idle-after", "1s", "--idle-probe-file", probe] });
    await open("/nodes");
    const row = page.locator(`[data-node-id="${desk.id}"]`);
    await expect.poll(() => row.textContent(), { timeout: 30_000 }).toContain("enrolled");
    writeFileSync(probe, JSON.stringify({ active: true }));
    await expect.poll(() => row.getByTestId("away-reason").textContent(), { timeout: 30_000 }).toBe("owner is using the machine");
    expect(await row.locator(".badge").first().textContent()).toBe("away");
    expect(await page.locator(`[data-node-id="${cluster.nodes[0]!.id}"]`).textContent()).toContain("enrolled");
    // The public node view says the same, as a code.
    const view = (await (await fetch(`${cluster.url}/api/v1/nodes/${desk.id}`)).json()) as { drain_reason?: string };
    expect(view.drain_reason).toBe("owner_active");
    await page.evaluate("document.activeElement?.blur()"); // the keyboard test left the skip link focused
    await shot("nodes");
  }, 90_000);
});
