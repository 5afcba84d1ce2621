import { existsSync, statSync } from "node:fs";
import {
  type BackendAdapter,
  type CommandRunner,
  type NodeConfig,
  POWER_LIMIT_QUERY,
  type StageBackend,
  type StageRuntimeChoice,
  inventoryWarnings,
  parsePowerLimits,
  reconcileInventory,
} from "@tessera/node";
import { type Hardware, MAX_CLOCK_SKEW_SECONDS, type NodeStatusView, type Signer, encodeNpub } from "@tessera/protocol";

/**
 * `tessera doctor`: one line per check, `[OK]`, `[WARN]` or `[FAIL]`, in a fixed order. Every seam is injected
 * (clock, fetch, command runner, disk, backend) so tests control what each check sees. A check never throws; one
 * that cannot run because an earlier one failed says so. The command exits non-zero when any check FAILs.
 */
export type CheckStatus = "OK" | "WARN" | "FAIL";

export interface CheckResult {
  name: string;
  status: CheckStatus;
  detail: string;
}

export interface DiskSpace {
  freeBytes: number;
  totalBytes: number;
}

export interface DoctorDeps {
  cliVersion: string;
  nodeVersion: string;
  /** Loads the node config (the file may be missing: then defaults). Throws on an invalid file. */
  loadConfig(): NodeConfig;
  readSigner(keyFile: string): Signer;
  fetch: typeof fetch;
  nowMs(): number;
  run: CommandRunner;
  platform: NodeJS.Platform;
  diskSpace(path: string): DiskSpace;
  openBackend(config: NodeConfig): Promise<BackendAdapter>;
  hardware(): Promise<Hardware>;
  timeoutMs?: number;
  /** How the user runs this CLI (`tessera`, `npx tessera`, …), for the commands the checks suggest; default `tessera`. */
  command?: string;
  /**
   * What a `stage_backend` setting runs layer spans on here (the node's resolveStageRuntime: loads and self-checks
   * ggml's CPU backend). Absent: no "stage runtime" line.
   */
  stageRuntime?(backend: StageBackend): StageRuntimeChoice;
}

/** Above this the coordinator refuses signed requests (MAX_CLOCK_SKEW_SECONDS); warn well before it. */
const SKEW_WARN_SECONDS = 5;
const DISK_WARN_BYTES = 20e9;
const DISK_FAIL_BYTES = 2e9;

const ok = (name: string, detail: string): CheckResult => ({ name, status: "OK", detail });
const warn = (name: string, detail: string): CheckResult => ({ name, status: "WARN", detail });
const fail = (name: string, detail: string): CheckResult => ({ name, status: "FAIL", detail });
const message = (err: unknown) => (err instanceof Error ? (err.cause instanceof Error ? `${err.message}: ${err.cause.message}` : err.message) : String(err));

export async function runDoctor(deps: DoctorDeps): Promise<CheckResult[]> {
  const results: CheckResult[] = [];
  const major = Number(/^v?(\d+)/.exec(deps.nodeVersion)?.[1] ?? 0);
  results.push(
    major >= 20 ? ok("CLI version", `tessera ${deps.cliVersion} (Node ${deps.nodeVersion})`) : warn("CLI version", `tessera ${deps.cliVersion} on Node ${deps.nodeVersion}; Node 20 or newer is required`),
  );

  let config: NodeConfig | undefined;
  try {
    config = deps.loadConfig();
    const file = config.paths.configFile;
    if (!existsSync(file)) results.push(fail("config file", `no ${file}: run \`${deps.command ?? "tessera"} setup\` (or \`${deps.command ?? "tessera"} init\`)`));
    else {
      const mode = statSync(file).mode & 0o777;
      results.push(mode & 0o077 ? warn("config file", `${file} is readable by others (mode ${mode.toString(8)}); chmod 600 it`) : ok("config file", file));
    }
  } catch (err) {
    results.push(fail("config file", message(err)));
  }

  let signer: Signer | undefined;
  if (config) {
    try {
      signer = deps.readSigner(config.paths.keyFile);
      results.push(ok("keypair", `${encodeNpub(signer.publicKeyHex)} (${config.paths.keyFile})`));
    } catch (err) {
      results.push(fail("keypair", `${message(err)}: run \`${deps.command ?? "tessera"} setup\` to make one`));
    }
  } else results.push(fail("keypair", "no usable config"));

  results.push(...(await coordinatorChecks(deps, config, signer)));
  results.push(...(await backendChecks(deps, config)));
  results.push(diskCheck(deps, config));
  results.push(await gpuDriverCheck(deps));
  const stage = stageRuntimeCheck(deps, config);
  if (stage) results.push(stage);
  const power = await powerCapCheck(deps, config);
  if (power) results.push(power);
  return results;
}

const COORDINATOR_CHECKS = ["coordinator reachable", "clock skew", "node registered", "node online"] as const;

async function coordinatorChecks(deps: DoctorDeps, config: NodeConfig | undefined, signer: Signer | undefined): Promise<CheckResult[]> {
  const skipRest = (from: number, why: string) => COORDINATOR_CHECKS.slice(from).map((name) => warn(name, `skipped: ${why}`));
  if (!config) return [fail("coordinator reachable", "no usable config"), ...skipRest(1, "no usable config")];
  const base = config.coordinator_url.replace(/\/+$/, "");
  const out: CheckResult[] = [];
  const started = deps.nowMs();
  let res: Response;
  try {
    res = await deps.fetch(`${base}/healthz`, { signal: AbortSignal.timeout(deps.timeoutMs ?? 5000) });
    await res.body?.cancel();
  } catch (err) {
    return [fail("coordinator reachable", `${base} unreachable: ${message(err)}`), ...skipRest(1, "coordinator unreachable")];
  }
  const latency = Math.max(0, deps.nowMs() - started);
  out.push(res.ok ? ok("coordinator reachable", `${base} (${latency} ms)`) : fail("coordinator reachable", `${base}/healthz answered HTTP ${res.status}`));

  // The HTTP Date header is the coordinator's clock (1 s resolution), sampled halfway through the round trip.
  const date = res.headers.get("date");
  const serverMs = date ? Date.parse(date) : NaN;
  if (Number.isNaN(serverMs)) out.push(warn("clock skew", "the coordinator sent no Date header; cannot compare clocks"));
  else {
    const skewS = Math.round((started + latency / 2 - serverMs) / 1000);
    const text = `${skewS >= 0 ? "+" : ""}${skewS} s against the coordinator`;
    if (Math.abs(skewS) > MAX_CLOCK_SKEW_SECONDS) out.push(fail("clock skew", `${text}: signed requests are refused beyond ${MAX_CLOCK_SKEW_SECONDS} s; sync this machine's clock (NTP)`));
    else if (Math.abs(skewS) > SKEW_WARN_SECONDS) out.push(warn("clock skew", `${text}; sync this machine's clock (NTP)`));
    else out.push(ok("clock skew", text));
  }

  if (!signer) return [...out, fail("node registered", "no keypair"), ...skipRest(3, "no keypair")];
  let status: NodeStatusView;
  try {
    const r = await deps.fetch(`${base}/api/v1/nodes/${signer.publicKeyHex}/status`, { signal: AbortSignal.timeout(deps.timeoutMs ?? 5000) });
    if (r.status === 404) return [...out, fail("node registered", `the coordinator does not know this node: run \`${deps.command ?? "tessera"} register\``), ...skipRest(3, "not registered")];
    if (!r.ok) return [...out, fail("node registered", `status answered HTTP ${r.status}`), ...skipRest(3, "no status")];
    status = (await r.json()) as NodeStatusView;
  } catch (err) {
    return [...out, fail("node registered", message(err)), ...skipRest(3, "no status")];
  }
  out.push(ok("node registered", `as ${signer.publicKeyHex.slice(0, 12)}…`));
  const age = status.last_seen_at ? Math.max(0, Math.round((deps.nowMs() - Date.parse(status.last_seen_at)) / 1000)) : undefined;
  const ageText = age === undefined ? "" : `, last heartbeat ${age} s ago`;
  out.push(status.status === "online" ? ok("node online", `online${ageText}`) : warn("node online", `offline${ageText}: start the daemon with \`${deps.command ?? "tessera"} start\``));
  return out;
}

async function backendChecks(deps: DoctorDeps, config: NodeConfig | undefined): Promise<CheckResult[]> {
  if (!config) return [fail("backend reachable", "no usable config"), warn("models in sync", "skipped: no usable config")];
  let backend: BackendAdapter;
  try {
    backend = await deps.openBackend(config);
  } catch (err) {
    return [fail("backend reachable", message(err)), warn("models in sync", "skipped: no backend")];
  }
  try {
    const health = await backend.health();
    if (!health.ok) return [fail("backend reachable", `${backend.kind}: ${health.message}`), warn("models in sync", "skipped: backend unreachable")];
    const out = [ok("backend reachable", backend.kind)];
    try {
      const [models, hardware] = await Promise.all([backend.listModels(), deps.hardware()]);
      const inventory = reconcileInventory(config.served_models, models, backend.kind, hardware);
      const problems = inventoryWarnings(inventory, backend.kind);
      if (inventory.served.length === 0) out.push(fail("models in sync", ["nothing to advertise", ...problems].join("; ")));
      else if (problems.length > 0) out.push(warn("models in sync", problems.join("; ")));
      else out.push(ok("models in sync", `advertising ${inventory.served.map((m) => m.id).join(", ")}`));
      if ("engineBuild" in backend && typeof backend.engineBuild === "function") out.push(engineBuildCheck(backend.engineBuild() as string | undefined, hardware, deps.command ?? "tessera"));
    } catch (err) {
      out.push(fail("models in sync", message(err)));
    }
    return out;
  } finally {
    await backend.close?.();
  }
}

function diskCheck(deps: DoctorDeps, config: NodeConfig | undefined): CheckResult {
  if (!config) return warn("disk space", "skipped: no usable config");
  let probe = config.paths.dataDir;
  while (!existsSync(probe) && probe !== "/") probe = probe.replace(/\/[^/]*\/?$/, "") || "/";
  try {
    const { freeBytes, totalBytes } = deps.diskSpace(probe);
    const text = `${(freeBytes / 1e9).toFixed(1)} GB free of ${(totalBytes / 1e9).toFixed(1)} GB at ${probe}`;
    if (freeBytes < DISK_FAIL_BYTES) return fail("disk space", `${text}: models need room`);
    if (freeBytes < DISK_WARN_BYTES) return warn("disk space", `${text}: a 7B model takes ~5 GB`);
    return ok("disk space", text);
  } catch (err) {
    return warn("disk space", `cannot read free space at ${probe}: ${message(err)}`);
  }
}

async function gpuDriverCheck(deps: DoctorDeps): Promise<CheckResult> {
  if (deps.platform === "darwin") return ok("GPU driver", "macOS (Metal)");
  const nvidia = await deps.run("nvidia-smi", ["--query-gpu=driver_version,name", "--format=csv,noheader"]);
  if (nvidia.code === 0) {
    const [driver, name] = (nvidia.stdout.split("\n")[0] ?? "").split(",").map((s) => s.trim());
    return ok("GPU driver", `NVIDIA ${driver ?? "?"}${name ? ` (${name})` : ""}`);
  }
  if (nvidia.code !== 127) return fail("GPU driver", `nvidia-smi failed (exit ${nvidia.code}): is the NVIDIA driver loaded?`);
  const rocm = await deps.run("rocm-smi", ["--showdriverversion"]);
  if (rocm.code === 0) {
    const version = /version:\s*(\S+)/i.exec(rocm.stdout)?.[1];
    return ok("GPU driver", `AMD ROCm${version ? ` ${version}` : ""}`);
  }
  if (rocm.code !== 127) return fail("GPU driver", `rocm-smi failed (exit ${rocm.code}): is the amdgpu driver loaded?`);
  return warn("GPU driver", "no GPU driver found (nvidia-smi, rocm-smi): this node runs models on the CPU");
}

export function formatResults(results: readonly CheckResult[]): string {
  const width = Math.max(...results.map((r) => r.name.length));
  return results.map((r) => `${`[${r.status}]`.padEnd(6)} ${r.name.padEnd(width)}  ${r.detail}`).join("\n") + "\n";
}

export function doctorExitCode(results: readonly CheckResult[]): number {
  return results.some((r) => r.status === "FAIL") ? 1 : 0;
}

/** The embedded engine's llama.cpp build (gpu-runtime/load-llama.ts): the GPU one from the data dir, or why the CPU one. */
function engineBuildCheck(detail: string | undefined, hardware: Hardware, command: string): CheckResult {
  if (detail === undefined) return warn("embedded build", "the engine has not loaded llama.cpp");
  if (!detail.startsWith("CPU build")) return ok("embedded build", detail);
  if (detail !== "CPU build") return warn("embedded build", `${detail}; \`${command} gpu setup\` reinstalls it`);
  const gpu = hardware.gpus.find((g) => g.vendor === "nvidia" || g.vendor === "amd" || g.vendor === "apple");
  return gpu ? warn("embedded build", `CPU build, but this machine has ${gpu.name}: \`${command} gpu setup\` installs its GPU build`) : ok("embedded build", "CPU build (no GPU found)");
}

/**
 * Which runtime layer spans run on: the configured `stage_backend`, what it resolves to here (for `auto`: the first
 * GPU backend that finds a GPU, else ggml-cpu when ggml's libraries load and pass their self-check, else wasm, and
 * why each was skipped) and, for ggml, the library build and folder (and the GPU device with its free memory); with
 * another setting, what `auto` would take. FAIL when `ggml-cpu` or a GPU backend is asked for but not usable and the
 * node holds spans (`stage_model`): its span loads would fail.
 */
function stageRuntimeCheck(deps: DoctorDeps, config: NodeConfig | undefined): CheckResult | undefined {
  if (!deps.stageRuntime) return undefined;
  if (!config) return warn("stage runtime", "skipped: no usable config");
  const configured = config.stage_backend;
  const spans = config.stage_model ? "" : " (no stage_model is set: this node holds no layer spans)";
  const says = (c: StageRuntimeChoice) => (c.runtime ? `${c.runtime} (${c.detail})` : c.detail);
  try {
    const choice = deps.stageRuntime(configured);
    if (!choice.runtime) return (config.stage_model ? fail : warn)("stage runtime", `stage_backend = ${configured}: ${choice.detail}${spans}`);
    const auto = configured === "auto" ? "" : `; auto would run ${says(deps.stageRuntime("auto"))}`;
    return ok("stage runtime", `stage_backend = ${configured}: spans run on ${says(choice)}${auto}${spans}`);
  } catch (err) {
    return fail("stage runtime", `stage_backend = ${configured}: ${message(err)}`);
  }
}

/** `[limits] max_power_watts` against the limit nvidia-smi reports in force (the daemon applies it with -pl at start). */
async function powerCapCheck(deps: DoctorDeps, config: NodeConfig | undefined): Promise<CheckResult | undefined> {
  const watts = config?.limits?.max_power_watts ?? 0;
  if (!config || watts <= 0) return undefined;
  const sudo = `\`sudo nvidia-smi -pl ${watts}\``;
  const r = await deps.run("nvidia-smi", POWER_LIMIT_QUERY);
  if (r.code === 127) return warn("power cap", `max_power_watts = ${watts} is set but there is no nvidia-smi to apply it with: no cap is in force`);
  if (r.code !== 0) return warn("power cap", `nvidia-smi could not report power limits (exit ${r.code}): max_power_watts = ${watts} may not be in force`);
  const limits = parsePowerLimits(r.stdout);
  if (limits.length === 0 || limits.every((l) => Number.isNaN(l.limit))) return warn("power cap", `this GPU reports no power limit ([N/A]): max_power_watts = ${watts} cannot be applied`);
  const outside = limits.find((l) => watts < l.min || watts > l.max);
  if (outside) return warn("power cap", `max_power_watts = ${watts} is outside this GPU's range ${outside.min}–${outside.max} W: nvidia-smi refuses it`);
  const off = limits.filter((l) => Math.abs(l.limit - watts) > 1);
  if (off.length === 0) return ok("power cap", `${watts} W in force on ${limits.length} GPU${limits.length === 1 ? "" : "s"}`);
  return warn("power cap", `the GPU power limit is ${limits.map((l) => `${l.limit} W`).join(", ")}, max_power_watts asks ${watts} W: not applied (it needs root); run ${sudo}`);
}
