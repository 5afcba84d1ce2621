import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { NODE_SETTINGS, loadNodeConfig, settingFlagsFromOptions, settingsHelp } from "./config.js";

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});
function home(toml?: string): string {
  const dir = mkdtempSync(join(tmpdir(), "tessera-config-"));
  dirs.push(dir);
  if (toml !== undefined) writeFileSync(join(dir, "node.toml"), toml);
  return dir;
}

describe("node config", () => {
  it("takes flag over env over node.toml over default", () => {
    const dir = home("max_concurrency = 3\nshutdown_grace_s = 7\nlog_level = \"warn\"\n");
    expect(loadNodeConfig({ home: dir, env: {} }).max_concurrency).toBe(3);
    const env = { TESSERA_MAX_CONCURRENCY: "5", TESSERA_SHUTDOWN_GRACE_S: "9" };
    const fromEnv = loadNodeConfig({ home: dir, env });
    expect(fromEnv.max_concurrency).toBe(5);
    expect(fromEnv.shutdown_grace_s).toBe(9);
    const fromFlag = loadNodeConfig({ home: dir, env, flags: { max_concurrency: "8" } });
    expect(fromFlag.max_concurrency).toBe(8);
    expect(fromFlag.sources).toMatchObject({ max_concurrency: "flag", shutdown_grace_s: "env", log_level: "file", backend: "default" });
    expect(fromFlag.coordinator_url).toBe("http://127.0.0.1:7337");
    expect(fromFlag.heartbeat_interval_s).toBe(30);
  });

  it("puts everything under --home, or TESSERA_HOME, else in the XDG dirs", () => {
    const dir = home();
    const viaFlag = loadNodeConfig({ home: dir, env: { TESSERA_HOME: "/elsewhere" } });
    expect(viaFlag.paths).toMatchObject({ configFile: join(dir, "node.toml"), keyFile: join(dir, "keys.toml") });
    expect(viaFlag.log_file).toBe(join(dir, "logs", "node.log"));
    expect(loadNodeConfig({ env: { TESSERA_HOME: dir } }).paths.home).toBe(dir);
    const xdg = loadNodeConfig({ env: { HOME: "/home/ada" } }).paths;
    expect(xdg.configFile).toBe("/home/ada/.config/tessera/node.toml");
    expect(xdg.defaultLogFile).toBe("/home/ada/.local/share/tessera/logs/node.log");
    const custom = loadNodeConfig({ env: { HOME: "/home/ada", XDG_CONFIG_HOME: "/cfg", XDG_DATA_HOME: "/data" } }).paths;
    expect(custom.keyFile).toBe("/cfg/tessera/keys.toml");
    expect(custom.dataDir).toBe("/data/tessera");
  });

  it("takes stage_backend from --stage-backend or TESSERA_STAGE_BACKEND, wasm by default", () => {
    const dir = home();
    expect(loadNodeConfig({ home: dir, env: {} }).stage_backend).toBe("wasm");
    expect(loadNodeConfig({ home: dir, env: { TESSERA_STAGE_BACKEND: "auto" } }).stage_backend).toBe("auto");
    expect(loadNodeConfig({ home: dir, env: { TESSERA_STAGE_BACKEND: "wasm" } }).stage_backend).toBe("wasm");
    expect(loadNodeConfig({ home: dir, env: { TESSERA_STAGE_BACKEND: "wasm" }, flags: { stage_backend: "ggml-cpu" } }).stage_backend).toBe("ggml-cpu");
    for (const gpu of ["vulkan", "cuda", "metal"]) expect(loadNodeConfig({ home: dir, env: { TESSERA_STAGE_BACKEND: gpu } }).stage_backend).toBe(gpu);
    expect(settingsHelp()).toContain("--stage-backend");
  });

  it("names the flag and the env var in every error, with code bad_request", () => {
    const dir = home();
    const attempt = (flags: Record<string, unknown>, env: Record<string, string> = {}) => () =>
      loadNodeConfig({ home: dir, env, flags });
    expect(attempt({}, { TESSERA_MAX_CONCURRENCY: "lots" })).toThrow(
      expect.objectContaining({
        code: "bad_request",
        message: expect.stringMatching(/max_concurrency "lots" \(from env TESSERA_MAX_CONCURRENCY\).*--max-concurrency/),
      }),
    );
    expect(attempt({ backend: "gpu-magic" })).toThrow(/invalid backend "gpu-magic" \(from flag --backend\): must be one of auto, ollama/);
    expect(attempt({ backend: "gpu-magic" })).toThrow(/TESSERA_BACKEND/);
    expect(attempt({ coordinator_url: "ftp://x" })).toThrow(/coordinator_url.*http\(s\) URL.*--coordinator, TESSERA_COORDINATOR_URL/);
    expect(attempt({ coordinator_replicas: "http://a:7337,ftp://b" })).toThrow(/coordinator_replicas.*http\(s\) URL.*--coordinator-replicas, TESSERA_COORDINATOR_REPLICAS/);
    expect(attempt({ coordinator_replicas: "http://a:7337,not a url" })).toThrow(/coordinator_replicas.*must be a URL/);
    expect(loadNodeConfig({ home: dir, env: { TESSERA_COORDINATOR_REPLICAS: "b:7337/, http://c:7337,b:7337" } }).coordinator_replicas).toEqual(["http://b:7337", "http://c:7337"]);
    expect(attempt({ max_concurrency: "0" })).toThrow(/from 1 to 1024/);
    expect(attempt({ stage_threads: "0" })).toThrow(/stage_threads.*from 1 to 256.*--stage-threads/);
    expect(attempt({ stage_threads: "1.5" })).toThrow(/stage_threads/);
    expect(attempt({ stage_backend: "rocm" })).toThrow(
      expect.objectContaining({ code: "bad_request", message: expect.stringMatching(/stage_backend "rocm" \(from flag --stage-backend\): must be one of auto, wasm, ggml-cpu, vulkan, cuda, metal.*TESSERA_STAGE_BACKEND/) }),
    );
    expect(attempt({}, { TESSERA_STAGE_BACKEND: "gpu" })).toThrow(/stage_backend "gpu" \(from env TESSERA_STAGE_BACKEND\)/);
    expect(attempt({ vllm_instances: "[{}]" })).toThrow(/each instance needs a host/);
  });

  it("rejects a node.toml that is not TOML, has unknown keys, or holds a bad value", () => {
    expect(() => loadNodeConfig({ home: home("coordinator_url = \n"), env: {} })).toThrow(
      expect.objectContaining({ code: "bad_request", message: expect.stringMatching(/node\.toml is not valid TOML/) }),
    );
    expect(() => loadNodeConfig({ home: home('coordinater_url = "http://x"\n'), env: {} })).toThrow(
      /unknown key "coordinater_url".*known keys: coordinator_url/,
    );
    expect(() => loadNodeConfig({ home: home("max_concurrency = \"many\"\n"), env: {} })).toThrow(
      /from node\.toml key max_concurrency/,
    );
  });

  it("reports a missing node.toml as not_found with the init command to run", () => {
    const dir = home();
    expect(() => loadNodeConfig({ home: dir, env: {}, requireConfigFile: true })).toThrow(
      expect.objectContaining({ code: "not_found", message: expect.stringContaining(`tessera init --home ${dir}`) }),
    );
  });

  it("rejects a --home that is a file and an unreadable node.toml", () => {
    const dir = home();
    const file = join(dir, "plain-file");
    writeFileSync(file, "x");
    expect(() => loadNodeConfig({ home: file, env: {} })).toThrow(
      expect.objectContaining({ code: "bad_request", message: expect.stringMatching(/exists and is not a directory/) }),
    );
    mkdirSync(join(dir, "h"));
    mkdirSync(join(dir, "h", "node.toml"));
    expect(() => loadNodeConfig({ home: join(dir, "h"), env: {} })).toThrow(/is a directory, not a file/);
    if (process.getuid?.() !== 0) {
      const locked = home("backend = \"ollama\"\n");
      chmodSync(join(locked, "node.toml"), 0o000);
      expect(() => loadNodeConfig({ home: locked, env: {} })).toThrow(/cannot read config .*EACCES/);
    }
  });

  it("reads lists and vLLM instances from TOML, env and flags; resolves paths from node.toml against its dir", () => {
    const dir = home(
      'served_models = ["qwen2.5:7b", "llama3"]\nmodel_path = "models/tiny.gguf"\n' +
        'vllm_instances = [{ host = "127.0.0.1:8001", model = "a" }, { host = "http://127.0.0.1:8002" }]\n',
    );
    const config = loadNodeConfig({ home: dir, env: {} });
    expect(config.served_models).toEqual(["qwen2.5:7b", "llama3"]);
    expect(config.model_path).toBe(join(dir, "models", "tiny.gguf"));
    expect(config.vllm_instances).toEqual([{ host: "127.0.0.1:8001", model: "a" }, { host: "http://127.0.0.1:8002" }]);
    expect(loadNodeConfig({ home: dir, env: { TESSERA_SERVED_MODELS: "a, b,a" } }).served_models).toEqual(["a", "b"]);
    expect(loadNodeConfig({ home: dir, env: {}, flags: { served_models: '["x"]' } }).served_models).toEqual(["x"]);
    expect(loadNodeConfig({ home: home(), env: {} }).served_models).toEqual([]);
  });

  it("maps commander's camelCase options back to settings and prints every setting in --help", () => {
    expect(settingFlagsFromOptions({ maxConcurrency: "2", coordinator: "http://c", home: "/x" })).toEqual({
      max_concurrency: "2",
      coordinator_url: "http://c",
    });
    const help = settingsHelp();
    for (const s of NODE_SETTINGS) {
      expect(help).toContain(s.env);
      expect(help).toContain(s.flag);
    }
    expect(help).toContain("TESSERA_HOME");
  });
});
