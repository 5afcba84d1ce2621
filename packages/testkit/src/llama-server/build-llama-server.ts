import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { copyFile, cp, mkdir, open, readFile, readdir, rename, rm, stat, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { homedir } from "node:os";
import { basename, dirname, join } from "node:path";
import { cmakeFeatureOptions, parseCpuinfoFlags, pickX86CpuVariant, runnableX86CpuVariant } from "./cpu-variant.js";
import { runProcess } from "./run-process.js";

/**
 * `buildLlamaServer()`: a real llama.cpp `llama-server`, compiled from the llama.cpp sources node-llama-cpp ships
 * (`node_modules/node-llama-cpp/llama/gitRelease.bundle`, with the patches it applies itself), CPU only, for tests
 * that run Tessera against the real server.
 *
 * - Cache: `<cacheDir>/<tag>-<hash>/bin/llama-server`, outside the checkout; the hash covers the source commit, the
 *   patches, the cmake options and the compiler, so any change builds afresh and an unchanged one returns at once.
 * - A build runs in `<final>.tmp-<pid>` and is renamed into place only after the binary ran `--version`: a killed
 *   build never counts as done. `<final>.lock` (created exclusively, holding the builder's pid) makes a second
 *   process wait for the first rather than build beside it; a lock whose pid is gone is taken over.
 * - No cmake, C++ compiler or git: resolves `{ binaryPath: undefined, reason }` so tests can skip with a notice,
 *   unless `mandatory` (default: `CI=true`), where it throws.
 * - Numerics: built as node-llama-cpp's prebuilt is (GGML_OPENMP=OFF, GGML_BACKEND_DL=ON), its CPU backend compiled
 *   with the instruction sets of the ggml variant the prebuilt loads on this machine (cpu-variant.ts); and by
 *   default `binaryPath` loads the prebuilt's own CPU backend library (`cpuBackend`), so the same GGUF and the same
 *   prompt ids give the same greedy tokens on both, whatever compiler is installed here.
 */
export interface LlamaServerBuildOptions {
  /** Root of the build cache. Default: `$TESSERA_CACHE_DIR/llama-server`, else `~/.cache/tessera/llama-server`. */
  cacheDir?: string;
  /** Throw instead of returning a reason when no toolchain is present. Default: `CI=true`. */
  mandatory?: boolean;
  /** Parallel compile jobs. Default 2. */
  jobs?: number;
  /** Progress lines (default: stderr, prefixed `[llama-server build]`). */
  log?: (line: string) => void;
  /**
   * Which CPU backend `binaryPath` loads. "prebuilt" (default, where node-llama-cpp ships one for this machine):
   * node-llama-cpp's own `libggml-cpu-<variant>.so`, from the same llama.cpp release, beside the llama-server,
   * llama and ggml-base built here; "source": the one compiled here. Why: every kernel is in that library, and the
   * compiler matters: built here with GCC 12.2 it gives the prebuilt's (GCC 11.4) greedy tokens on F16 and Q8_0
   * files but not on Q4_K_M (10 of 64 tokens); with the prebuilt's library, 64 of 64 (design.md beside the adapter).
   */
  cpuBackend?: "prebuilt" | "source";
}

export interface LlamaServerBinary {
  binaryPath: string;
  /** The cache entry: `bin/` holds llama-server and the ggml/llama shared libraries it loads. */
  dir: string;
  /** node-llama-cpp's llama.cpp release tag and the bundle's commit. */
  tag: string;
  commit: string;
  /** The ggml x86 CPU variant compiled in (`zen4`, `haswell`, …), or `native` off x86-64 Linux. */
  cpuVariant: string;
  cmakeOptions: string[];
  /** Seconds the build took, when this call built it. */
  builtInSeconds?: number;
  /** The CPU backend `binaryPath` loads (see `LlamaServerBuildOptions.cpuBackend`). */
  cpuBackend: "prebuilt" | "source";
  /** The same llama-server with every library compiled here, CPU backend included. */
  sourceBinaryPath: string;
}

export type LlamaServerBuild = LlamaServerBinary | { binaryPath: undefined; reason: string };

interface SourceInfo {
  nodeLlamaCppDir: string;
  bundle: string;
  tag: string;
  patches: string[];
}

const inProcess = new Map<string, Promise<LlamaServerBuild>>();

export function defaultLlamaServerCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.TESSERA_CACHE_DIR ? join(env.TESSERA_CACHE_DIR, "llama-server") : join(homedir(), ".cache", "tessera", "llama-server");
}

export function buildLlamaServer(options: LlamaServerBuildOptions = {}): Promise<LlamaServerBuild> {
  const cacheDir = options.cacheDir ?? defaultLlamaServerCacheDir();
  let pending = inProcess.get(cacheDir);
  if (!pending) {
    const log = options.log ?? ((line: string) => process.stderr.write(`[llama-server build] ${line}\n`));
    pending = build(cacheDir, { ...options, log }).then<LlamaServerBuild>((b) => (b.binaryPath === undefined ? b : withCpuBackend(b, options.cpuBackend ?? "prebuilt", log)));
    inProcess.set(cacheDir, pending);
    pending.catch(() => inProcess.delete(cacheDir));
  }
  return pending;
}

/** What a build would be: the cache entry, the source and the options, or why there can be none. Builds nothing. */
export interface LlamaServerBuildPlan {
  finalDir: string;
  tag: string;
  commit: string;
  cpuVariant: string;
  cmakeOptions: string[];
  bundle: string;
  patches: string[];
  cmake: string;
  ninja: boolean;
  compilerVersion: string;
}

export async function planLlamaServerBuild(cacheDir: string = defaultLlamaServerCacheDir()): Promise<LlamaServerBuildPlan | { missing: string }> {
  const tools = await findToolchain();
  if ("missing" in tools) return tools;
  const source = await findSource();
  const commit = await bundleCommit(source.bundle);
  const { cpuVariant, cpuOptions } = await cpuBackendOptions();
  const cmakeOptions = [
    "-DCMAKE_BUILD_TYPE=Release",
    "-DCMAKE_BUILD_RPATH_USE_ORIGIN=ON", // libraries found beside the binary, so the finished dir can be renamed
    "-DBUILD_SHARED_LIBS=ON",
    "-DGGML_OPENMP=OFF",
    "-DGGML_CCACHE=OFF",
    "-DGGML_METAL=OFF",
    "-DGGML_CUDA=OFF",
    "-DGGML_VULKAN=OFF",
    "-DLLAMA_CURL=OFF",
    "-DLLAMA_OPENSSL=OFF",
    "-DLLAMA_BUILD_UI=OFF",
    "-DLLAMA_USE_PREBUILT_UI=OFF", // it would download the web UI
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_BUILD_TOOLS=ON",
    "-DLLAMA_BUILD_SERVER=ON",
    "-DLLAMA_BUILD_APP=OFF",
    ...cpuOptions,
  ];
  const patchTexts = await Promise.all(source.patches.map((p) => readFile(p, "utf8")));
  const key = createHash("sha256")
    .update(JSON.stringify({ commit, cmakeOptions, patchTexts, compiler: tools.compilerVersion }))
    .digest("hex")
    .slice(0, 12);
  return {
    finalDir: join(cacheDir, `${source.tag}-${key}`),
    tag: source.tag,
    commit,
    cpuVariant,
    cmakeOptions,
    bundle: source.bundle,
    patches: source.patches,
    cmake: tools.cmake,
    ninja: tools.ninja,
    compilerVersion: tools.compilerVersion,
  };
}

type SourceBuild = Omit<LlamaServerBinary, "cpuBackend" | "sourceBinaryPath">;

async function build(cacheDir: string, options: LlamaServerBuildOptions): Promise<SourceBuild | { binaryPath: undefined; reason: string }> {
  const log = options.log ?? ((line: string) => process.stderr.write(`[llama-server build] ${line}\n`));
  const mandatory = options.mandatory ?? process.env.CI === "true";
  const jobs = options.jobs ?? 2;

  const plan = await planLlamaServerBuild(cacheDir);
  if ("missing" in plan) {
    const reason = `cannot build llama-server: ${plan.missing} not found (install cmake, a C++ compiler and git)`;
    if (mandatory) throw new Error(`${reason}; it is mandatory under CI=true`);
    return { binaryPath: undefined, reason };
  }
  const { finalDir, tag, commit, cpuVariant, cmakeOptions } = plan;
  const found = await finished(finalDir, { tag, commit, cpuVariant, cmakeOptions });
  if (found) return found;

  await mkdir(cacheDir, { recursive: true });
  const lockPath = `${finalDir}.lock`;
  await acquireLock(lockPath, log);
  try {
    const again = await finished(finalDir, { tag, commit, cpuVariant, cmakeOptions });
    if (again) return again;

    const started = Date.now();
    await removeAbandonedBuilds(finalDir);
    const tmp = `${finalDir}.tmp-${process.pid}`;
    await mkdir(tmp, { recursive: true });
    try {
      log(`building llama-server ${tag} (${commit.slice(0, 12)}, CPU variant ${cpuVariant}) into ${finalDir}; this takes minutes on two cores`);
      const src = join(tmp, "src");
      await must(runProcess("git", ["clone", "--quiet", plan.bundle, src]), "git clone of node-llama-cpp's llama.cpp bundle");
      for (const patch of plan.patches) {
        const check = await runProcess("git", ["apply", "--check", patch], { cwd: src });
        if (check.code === 0) await must(runProcess("git", ["apply", patch], { cwd: src }), `git apply ${patch}`);
        else log(`patch ${patch} does not apply (already in the sources?); building without it`);
      }
      const buildDir = join(tmp, "build");
      const generator = plan.ninja ? ["-G", "Ninja"] : [];
      await must(runProcess(plan.cmake, ["-S", src, "-B", buildDir, ...generator, ...cmakeOptions]), "cmake configure");
      await must(
        runProcess(plan.cmake, ["--build", buildDir, "--target", "llama-server", "-j", String(jobs)], { onLine: progress(log) }),
        "cmake --build (llama-server)",
      );
      const built = join(buildDir, "bin", "llama-server");
      await must(runProcess(built, ["--version"]), "llama-server --version");
      // Keep only bin/ (the binary and the shared libraries beside it); sources and objects are ~1 GB.
      await rename(join(buildDir, "bin"), join(tmp, "bin"));
      await rm(src, { recursive: true, force: true });
      await rm(buildDir, { recursive: true, force: true });
      const builtInSeconds = Math.round((Date.now() - started) / 1000);
      await writeFile(join(tmp, "build.json"), JSON.stringify({ tag, commit, cpuVariant, cmakeOptions, compiler: plan.compilerVersion, builtInSeconds }, null, 2));
      await rename(tmp, finalDir);
      log(`llama-server built in ${builtInSeconds} s: ${join(finalDir, "bin", "llama-server")}`);
      return { binaryPath: join(finalDir, "bin", "llama-server"), dir: finalDir, tag, commit, cpuVariant, cmakeOptions, builtInSeconds };
    } catch (err) {
      await rm(tmp, { recursive: true, force: true });
      throw err;
    }
  } finally {
    await rm(lockPath, { force: true });
  }
}

async function finished(dir: string, info: Omit<SourceBuild, "binaryPath" | "dir">): Promise<SourceBuild | undefined> {
  const binaryPath = join(dir, "bin", "llama-server");
  return existsSync(join(dir, "build.json")) && existsSync(binaryPath) ? { binaryPath, dir, ...info } : undefined;
}

async function must(result: Promise<{ code: number | null; tail: string; error?: Error }>, what: string): Promise<void> {
  const r = await result;
  if (r.code !== 0) throw new Error(`llama-server build: ${what} failed (${r.error?.message ?? `exit ${r.code}`}):\n${r.tail}`);
}

/** Ninja/make progress (`[n/m] …`) at most every 15 s, and every error line. */
function progress(log: (line: string) => void): (line: string) => void {
  let last = 0;
  return (line) => {
    const step = /^\[\s*(\d+)\/(\d+)\]/.exec(line) ?? /^\[\s*(\d+)%\]/.exec(line);
    if (step) {
      if (Date.now() - last >= 15_000) {
        last = Date.now();
        log(step[2] ? `step ${step[1]}/${step[2]}` : `${step[1]}%`);
      }
    } else if (/error|FAILED/.test(line)) log(line);
  };
}

async function acquireLock(lockPath: string, log: (line: string) => void): Promise<void> {
  let lastNotice = 0;
  for (;;) {
    try {
      const handle = await open(lockPath, "wx");
      await handle.writeFile(String(process.pid));
      await handle.close();
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    }
    const holder = Number.parseInt(await readFile(lockPath, "utf8").catch(() => ""), 10);
    if (Number.isInteger(holder) && holder > 0 && !alive(holder)) {
      log(`removing the stale build lock of pid ${holder}`);
      await rm(lockPath, { force: true });
      continue;
    }
    if (!Number.isInteger(holder)) {
      // Just created by another process that has not written its pid yet, or unreadable: give it a moment.
      const age = await stat(lockPath).then((s) => Date.now() - s.mtimeMs, () => 0);
      if (age > 60_000) await rm(lockPath, { force: true });
    }
    if (Date.now() - lastNotice >= 60_000) {
      lastNotice = Date.now();
      log(`waiting for the llama-server build of pid ${holder} (${lockPath})`);
    }
    await new Promise((r) => setTimeout(r, 2_000));
  }
}

/** `<final>.tmp-<pid>` dirs of builds that were killed (their pid is gone); called with the lock held. */
async function removeAbandonedBuilds(finalDir: string): Promise<void> {
  const prefix = `${basename(finalDir)}.tmp-`;
  for (const name of await readdir(dirname(finalDir))) {
    if (!name.startsWith(prefix)) continue;
    const pid = Number.parseInt(name.slice(prefix.length), 10);
    if (pid === process.pid || !alive(pid)) await rm(join(dirname(finalDir), name), { recursive: true, force: true });
  }
}

/**
 * `<entry>/bin-prebuilt-cpu-<variant>/`: a copy of bin/ whose CPU backend is node-llama-cpp's prebuilt one (ggml
 * loads `libggml-cpu*.so` from the executable's own folder, so the binary is copied, not linked). Made once, in a
 * temp folder renamed into place. Falls back to the source-built backend, saying why, where there is no prebuilt
 * library for this variant or its release is not the bundle's.
 */
async function withCpuBackend(b: SourceBuild, mode: "prebuilt" | "source", log: (line: string) => void): Promise<LlamaServerBinary> {
  const source: LlamaServerBinary = { ...b, cpuBackend: "source", sourceBinaryPath: b.binaryPath };
  if (mode === "source" || b.cpuVariant === "native") return source;
  const prebuilt = await prebuiltCpuBin(b, b.cpuVariant);
  if ("reason" in prebuilt) {
    log(`${prebuilt.reason}: using the CPU backend built from source`);
    return source;
  }
  return { ...b, binaryPath: prebuilt.binaryPath, cpuBackend: "prebuilt", sourceBinaryPath: b.binaryPath };
}

/**
 * The same llama-server loading node-llama-cpp's prebuilt CPU library of ANOTHER ggml variant than the one ggml picks
 * here (`bin-prebuilt-cpu-<variant>/`, as above): another CPU's kernels (e.g. an AVX2-only Haswell's, whose dot
 * products sum in other orders than AVX512 ones) on this machine, for honest cross-CPU pairs in the verification
 * calibration. Throws when the variant is unknown, needs instruction sets this CPU lacks (`cpuinfo`: /proc/cpuinfo's
 * text, read when not given), or node-llama-cpp ships no library of it for this release: there is no fallback, since
 * a different backend would not be the kernels asked for.
 */
export async function llamaServerWithCpuVariant(build: LlamaServerBinary, variant: string, options: { cpuinfo?: string } = {}): Promise<LlamaServerBinary> {
  if (process.platform !== "linux" || process.arch !== "x64") throw new Error(`llama-server CPU variants are node-llama-cpp's linux-x64 libraries; this is ${process.platform}-${process.arch}`);
  const cpuinfo = options.cpuinfo ?? (await readFile("/proc/cpuinfo", "utf8"));
  runnableX86CpuVariant(variant, parseCpuinfoFlags(cpuinfo));
  const source: SourceBuild = { binaryPath: build.sourceBinaryPath, dir: build.dir, tag: build.tag, commit: build.commit, cpuVariant: build.cpuVariant, cmakeOptions: build.cmakeOptions };
  const prebuilt = await prebuiltCpuBin(source, variant);
  if ("reason" in prebuilt) throw new Error(`llama-server with the ${variant} CPU backend: ${prebuilt.reason}`);
  return { ...build, binaryPath: prebuilt.binaryPath, cpuVariant: variant, cpuBackend: "prebuilt", builtInSeconds: undefined };
}

/** Makes (once) `<entry>/bin-prebuilt-cpu-<variant>/` from bin/ and node-llama-cpp's `libggml-cpu-<variant>.so`. */
async function prebuiltCpuBin(b: SourceBuild, variant: string): Promise<{ binaryPath: string } | { reason: string }> {
  const nlc = (await findSource()).nodeLlamaCppDir;
  const release = JSON.parse(await readFile(join(nlc, "llama", "binariesGithubRelease.json"), "utf8").catch(() => "{}")) as { release?: string };
  if (release.release !== b.tag) return { reason: `node-llama-cpp's prebuilt binaries are release ${release.release}, the bundle is ${b.tag}` };
  const file = `libggml-cpu-${variant}.so`;
  const prebuilt = [join(nlc, "..", "@node-llama-cpp", "linux-x64", "bins", "linux-x64", file), join(nlc, "node_modules", "@node-llama-cpp", "linux-x64", "bins", "linux-x64", file)].find((f) => existsSync(f));
  if (!prebuilt) return { reason: `node-llama-cpp ships no ${file} here` };
  const dir = join(b.dir, `bin-prebuilt-cpu-${variant}`);
  const binaryPath = join(dir, "llama-server");
  if (existsSync(binaryPath)) return { binaryPath };
  const tmp = `${dir}.tmp-${process.pid}`;
  await rm(tmp, { recursive: true, force: true });
  // Only the one CPU library in the folder: ggml loads the best-scoring libggml-cpu*.so it finds there.
  await cp(join(b.dir, "bin"), tmp, { recursive: true, verbatimSymlinks: true, filter: (f) => basename(f) !== "libggml-cpu.so" });
  await copyFile(prebuilt, join(tmp, file));
  try {
    await rename(tmp, dir);
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    if (!existsSync(binaryPath)) throw err;
  }
  return { binaryPath };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

async function findToolchain(): Promise<{ cmake: string; compilerVersion: string; ninja: boolean } | { missing: string }> {
  const cmake = (await runProcess("cmake", ["--version"])).code === 0 ? "cmake" : undefined;
  if (!cmake) return { missing: "cmake" };
  let compilerVersion: string | undefined;
  for (const cxx of [process.env.CXX, "c++", "g++", "clang++"]) {
    if (!cxx) continue;
    const r = await runProcess(cxx, ["--version"]);
    if (r.code === 0) {
      compilerVersion = r.tail.split("\n")[0] ?? cxx;
      break;
    }
  }
  if (!compilerVersion) return { missing: "a C++ compiler (c++, g++ or clang++)" };
  if ((await runProcess("git", ["--version"])).code !== 0) return { missing: "git" };
  const ninja = (await runProcess("ninja", ["--version"])).code === 0;
  return { cmake, compilerVersion, ninja };
}

async function findSource(): Promise<SourceInfo> {
  const entry = createRequire(import.meta.url).resolve("node-llama-cpp");
  let dir = dirname(entry);
  while (!existsSync(join(dir, "llama", "llama.cpp.info.json"))) {
    const up = dirname(dir);
    if (up === dir) throw new Error(`llama-server build: node-llama-cpp's llama/ folder not found above ${entry}`);
    dir = up;
  }
  const info = JSON.parse(await readFile(join(dir, "llama", "llama.cpp.info.json"), "utf8")) as { tag?: string };
  const bundle = join(dir, "llama", "gitRelease.bundle");
  if (!existsSync(bundle)) throw new Error(`llama-server build: ${bundle} is missing (node-llama-cpp ships it)`);
  const patchDir = join(dir, "llama", "patches");
  const patches = existsSync(patchDir) ? (await readdir(patchDir)).filter((f) => f.endsWith(".diff")).sort().map((f) => join(patchDir, f)) : [];
  return { nodeLlamaCppDir: dir, bundle, tag: info.tag ?? "unknown", patches };
}

async function bundleCommit(bundle: string): Promise<string> {
  const r = await runProcess("git", ["bundle", "list-heads", bundle]);
  const commit = /^([0-9a-f]{40})/m.exec(r.tail)?.[1];
  if (r.code !== 0 || !commit) throw new Error(`llama-server build: git bundle list-heads ${bundle} failed:\n${r.tail}`);
  return commit;
}

async function cpuBackendOptions(): Promise<{ cpuVariant: string; cpuOptions: string[] }> {
  if (process.platform === "linux" && process.arch === "x64") {
    const cpuinfo = await readFile("/proc/cpuinfo", "utf8").catch(() => "");
    const variant = pickX86CpuVariant(parseCpuinfoFlags(cpuinfo));
    return {
      cpuVariant: variant.name,
      cpuOptions: ["-DGGML_NATIVE=OFF", "-DGGML_CPU_ALL_VARIANTS=OFF", "-DGGML_BACKEND_DL=ON", ...cmakeFeatureOptions(variant.features)],
    };
  }
  return { cpuVariant: "native", cpuOptions: ["-DGGML_NATIVE=ON", "-DGGML_BACKEND_DL=OFF"] };
}
