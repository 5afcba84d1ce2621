import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { type FakeModelHost, freePort, makeTinyModel, startFakeModelHost } from "@tessera/testkit";
import { type DownloadProgress, installGguf, parseModelReference, parseSha256Flag } from "./index.js";

/**
 * Must-show 4 at the library layer: a GGUF from a local HTTP server (a file host and a hub listing at their wire
 * formats) with progress, range requests, a connection dropped mid-download then resumed, and a checksum refused.
 */
let dir: string;
let model: Buffer;
let sha: string;
let host: FakeModelHost | undefined;
const noSleep = async () => {};

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "tessera-download-"));
  const info = await makeTinyModel({ path: join(dir, "tiny.gguf"), seed: 7, vocab: "bytes" });
  model = readFileSync(info.path);
  sha = createHash("sha256").update(model).digest("hex");
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));
afterEach(async () => {
  await host?.close();
  host = undefined;
});

let n = 0;
function modelsDir(): string {
  return join(dir, `models-${++n}`);
}

const REPO = {
  "tessera/tiny-GGUF": [
    { path: "tiny-Q8_0.gguf", bytes: Buffer.from("GGUF-not-this-one") },
    { path: "tiny-Q4_K_M.gguf", bytes: Buffer.alloc(0) },
    { path: "mmproj-tiny-Q4_K_M.gguf", bytes: Buffer.from("GGUFprojector") },
    { path: "big/big-Q4_K_M-00001-of-00002.gguf", bytes: Buffer.from("GGUF") },
  ],
};
function repos(extra: Partial<{ publishedSha256: string; publishedSize: number }> = {}) {
  return { "tessera/tiny-GGUF": REPO["tessera/tiny-GGUF"].map((f) => (f.path === "tiny-Q4_K_M.gguf" ? { ...f, bytes: model, ...extra } : f)) };
}

describe("references", () => {
  it("parses URLs and hub references; refuses malformed ones with bad_request", () => {
    expect(parseModelReference("https://example.com/m/x-Q4_K_M.gguf?download=1")).toEqual({ kind: "url", url: "https://example.com/m/x-Q4_K_M.gguf?download=1", fileName: "x-Q4_K_M.gguf" });
    expect(parseModelReference("https://huggingface.co/o/r/blob/main/a.gguf")).toMatchObject({ url: "https://huggingface.co/o/r/resolve/main/a.gguf" });
    expect(parseModelReference("hf:Qwen/Qwen2.5-1.5B-Instruct-GGUF:Q4_K_M")).toEqual({ kind: "hf-quant", repo: "Qwen/Qwen2.5-1.5B-Instruct-GGUF", quant: "Q4_K_M", revision: "main" });
    expect(parseModelReference("hf:o/r/sub/f.gguf#v1.0")).toEqual({ kind: "hf-file", repo: "o/r", file: "sub/f.gguf", revision: "v1.0" });
    for (const bad of ["", "ftp://h/x.gguf", "https://", "https://h/", "https://u:p@h/x.gguf", "hf:", "hf:owner", "hf:o/r", "hf:o/r:", "hf:o/r:Q4 K", "hf:o/r/x.bin", "hf:o/r/../x.gguf", "hf:o/r:Q4#..", "hf:o r/x:Q4", "qwen2.5:7b", 42]) {
      expect(() => parseModelReference(bad), String(bad)).toThrow(expect.objectContaining({ code: "bad_request" }));
    }
    expect(parseSha256Flag(`SHA256:${"A".repeat(64)}`)).toBe("a".repeat(64));
    for (const bad of ["", "abc", "g".repeat(64), "a".repeat(63), 5]) expect(() => parseSha256Flag(bad)).toThrow(expect.objectContaining({ code: "bad_request" }));
  });
});

describe("installGguf from a local HTTP server", () => {
  it("by URL: downloads with progress (bytes rising to the total), checks the GGUF magic, names the model after the file", async () => {
    host = await startFakeModelHost({ files: [{ path: "tiny-Q4_K_M.gguf", bytes: model }], bytesPerTick: 8192, tickMs: 10 });
    const progress: DownloadProgress[] = [];
    const to = modelsDir();
    const result = await installGguf({ reference: `${host.url}/files/tiny-Q4_K_M.gguf`, modelsDir: to, hubEndpoint: host.url, fetch, onProgress: (p) => progress.push(p), sleep: noSleep });
    expect(result).toMatchObject({ path: join(to, "tiny-Q4_K_M.gguf"), modelId: "tiny-Q4_K_M", sizeBytes: model.length, sha256: sha, sha256Checked: false, resumedFromBytes: 0, alreadyInstalled: false });
    expect(readFileSync(result.path).equals(model)).toBe(true);
    expect(statSync(to).mode & 0o777).toBe(0o700);
    expect(progress.length).toBeGreaterThan(3);
    expect(progress.every((p, i) => p.totalBytes === model.length && (i === 0 || p.completedBytes > progress[i - 1]!.completedBytes))).toBe(true);
    expect(progress.at(-1)!.completedBytes).toBe(model.length);
    expect(readdirSync(to)).toEqual(["tiny-Q4_K_M.gguf"]);
    // Again: already there and intact, nothing downloaded.
    const before = host.requests.length;
    expect(await installGguf({ reference: `${host.url}/files/tiny-Q4_K_M.gguf`, modelsDir: to, hubEndpoint: host.url, fetch })).toMatchObject({ alreadyInstalled: true, sha256: sha });
    expect(host.requests.length).toBe(before);
  });

  it("hf:owner/repo:QUANT resolves through the hub's listing (not the projector, not a split), follows the redirect and checks the published sha256", async () => {
    host = await startFakeModelHost({ repos: repos() });
    const result = await installGguf({ reference: "hf:tessera/tiny-GGUF:q4_k_m", modelsDir: modelsDir(), hubEndpoint: host.url, hubToken: "hf_secret", fetch });
    expect(result).toMatchObject({ fileName: "tiny-Q4_K_M.gguf", sha256: sha, sha256Checked: true, source: "tessera/tiny-GGUF/tiny-Q4_K_M.gguf@main" });
    expect(host.requests.map((r) => [r.url, r.status])).toEqual([
      ["/api/models/tessera/tiny-GGUF/tree/main?recursive=true", 200],
      ["/tessera/tiny-GGUF/resolve/main/tiny-Q4_K_M.gguf", 302],
      ["/files/tessera/tiny-GGUF/tiny-Q4_K_M.gguf", 200],
    ]);
    expect(host.requests[0]!.authorization).toBe("Bearer hf_secret");
    const byFile = await installGguf({ reference: "hf:tessera/tiny-GGUF/tiny-Q4_K_M.gguf", modelsDir: modelsDir(), hubEndpoint: host.url, fetch });
    expect(byFile).toMatchObject({ sha256: sha, sha256Checked: true });
  });

  it("a connection dropped mid-download resumes with a Range request validated by If-Range (the ETag), and the result is byte-exact", async () => {
    host = await startFakeModelHost({ files: [{ path: "m.gguf", bytes: model }], dropAfterBytes: Math.floor(model.length / 3), dropTimes: 2, bytesPerTick: 8192, tickMs: 1 });
    const result = await installGguf({ reference: `${host.url}/files/m.gguf`, modelsDir: modelsDir(), hubEndpoint: host.url, sha256: sha, fetch, sleep: noSleep });
    expect(readFileSync(result.path).equals(model)).toBe(true);
    expect(result).toMatchObject({ sha256: sha, sha256Checked: true });
    const gets = host.requests.filter((r) => r.url === "/files/m.gguf");
    expect(gets.map((r) => r.status)).toEqual([200, 206, 206]);
    // Each retry asks for the rest from what reached the disk (a dropped socket may lose its last bytes in flight).
    const starts = gets.map((r) => Number(/^bytes=(\d+)-$/.exec(r.range ?? "bytes=0-")![1]));
    expect(starts[0]).toBe(0);
    expect(starts[1]).toBeGreaterThan(0);
    expect(starts[2]).toBeGreaterThan(starts[1]!);
    expect(starts[2]).toBeLessThanOrEqual(2 * Math.floor(model.length / 3));
    expect(gets[1]!.ifRange).toBe(`"${sha}"`);
  });

  it("interrupted (Ctrl-C): cancelled, the .part is kept and says so; the next run resumes from it", async () => {
    host = await startFakeModelHost({ files: [{ path: "m.gguf", bytes: model }], bytesPerTick: 4096, tickMs: 5 });
    const to = modelsDir();
    const stop = new AbortController();
    const run = installGguf({
      reference: `${host.url}/files/m.gguf`, modelsDir: to, hubEndpoint: host.url, fetch, signal: stop.signal,
      onProgress: (p) => { if (p.completedBytes > model.length / 2) stop.abort(); },
    });
    await expect(run).rejects.toMatchObject({ code: "cancelled", message: expect.stringMatching(/interrupted at .* the partial file is kept .*m\.gguf\.part.*run the same command again to resume/) });
    const kept = statSync(join(to, "m.gguf.part")).size;
    expect(kept).toBeGreaterThan(model.length / 2);
    expect(existsSync(join(to, "m.gguf"))).toBe(false);
    const resumed = await installGguf({ reference: `${host.url}/files/m.gguf`, modelsDir: to, hubEndpoint: host.url, fetch });
    expect(resumed).toMatchObject({ resumedFromBytes: kept, sha256: sha });
    expect(host.requests.at(-1)).toMatchObject({ range: `bytes=${kept}-`, status: 206 });
    expect(readdirSync(to)).toEqual(["m.gguf"]);
  });

  it("a file changed on the server since the .part began: If-Range fails, the whole new file comes (200) and replaces the part", async () => {
    host = await startFakeModelHost({ files: [{ path: "m.gguf", bytes: model }] });
    const to = modelsDir();
    mkdirSync(to, { recursive: true });
    // Now a .part from an older version: write one by hand with the old ETag, then change the file.
    writeFileSync(join(to, "m.gguf.part"), model.subarray(0, 5000));
    writeFileSync(join(to, "m.gguf.part.json"), JSON.stringify({ url: `${host.url}/files/m.gguf`, validator: `"${sha}"`, size: model.length }));
    const changed = Buffer.concat([model, Buffer.from("trailing bytes")]);
    host.replace("m.gguf", changed);
    const result = await installGguf({ reference: `${host.url}/files/m.gguf`, modelsDir: to, hubEndpoint: host.url, fetch });
    expect(host.requests.at(-1)).toMatchObject({ range: "bytes=5000-", ifRange: `"${sha}"`, status: 200 });
    expect(readFileSync(result.path).equals(changed)).toBe(true);
  });

  it("a server that ignores Range: the download starts over and still completes", async () => {
    host = await startFakeModelHost({ files: [{ path: "m.gguf", bytes: model }], dropAfterBytes: 20_000, ignoreRange: true });
    const result = await installGguf({ reference: `${host.url}/files/m.gguf`, modelsDir: modelsDir(), hubEndpoint: host.url, fetch, sleep: noSleep });
    expect(readFileSync(result.path).equals(model)).toBe(true);
    expect(host.requests.map((r) => r.status)).toEqual([200, 200]);
  });

  it("checksum mismatch: the hub publishes another sha256, or --sha256 says another: refused with bad_request and nothing kept", async () => {
    host = await startFakeModelHost({ repos: repos({ publishedSha256: "0".repeat(64) }), files: [{ path: "m.gguf", bytes: model }] });
    const to = modelsDir();
    await expect(installGguf({ reference: "hf:tessera/tiny-GGUF:Q4_K_M", modelsDir: to, hubEndpoint: host.url, fetch })).rejects.toMatchObject({
      code: "bad_request", message: expect.stringMatching(/checksum mismatch .* expected sha256 0{64}, got [0-9a-f]{64}; the file was removed/),
    });
    expect(readdirSync(to)).toEqual([]);
    await expect(installGguf({ reference: `${host.url}/files/m.gguf`, modelsDir: to, hubEndpoint: host.url, sha256: "f".repeat(64), fetch })).rejects.toMatchObject({ code: "bad_request", message: expect.stringMatching(/checksum mismatch/) });
    expect(readdirSync(to)).toEqual([]);
    // --sha256 that disagrees with the hub's: refused before any byte is fetched.
    const before = host.requests.length;
    await expect(installGguf({ reference: "hf:tessera/tiny-GGUF:Q4_K_M", modelsDir: to, hubEndpoint: host.url, sha256: "1".repeat(64), fetch })).rejects.toMatchObject({ code: "bad_request", message: expect.stringMatching(/differs from the sha256 the hub publishes/) });
    expect(host.requests.slice(before).map((r) => r.url)).toEqual(["/api/models/tessera/tiny-GGUF/tree/main?recursive=true"]);
  });

  it("size mismatch: the hub publishes another size than the file served: refused with bad_request and nothing kept", async () => {
    host = await startFakeModelHost({ repos: repos({ publishedSize: model.length + 1 }), files: [{ path: "m.gguf", bytes: model }] });
    const to = modelsDir();
    await expect(installGguf({ reference: "hf:tessera/tiny-GGUF:Q4_K_M", modelsDir: to, hubEndpoint: host.url, fetch })).rejects.toMatchObject({
      code: "bad_request", message: expect.stringMatching(new RegExp(`is ${model.length} bytes but ${model.length + 1} were published; not installed`)),
    });
    expect(readdirSync(to)).toEqual([]);
  });

  it("not a GGUF (an HTML page): refused as soon as its first bytes arrive and removed", async () => {
    host = await startFakeModelHost({ files: [{ path: "page.gguf", bytes: Buffer.from("<!doctype html><p>log in</p>".repeat(100)) }] });
    const to = modelsDir();
    await expect(installGguf({ reference: `${host.url}/files/page.gguf`, modelsDir: to, hubEndpoint: host.url, fetch })).rejects.toMatchObject({
      code: "bad_request", message: expect.stringMatching(/is not a GGUF file: it starts with "<!do", not "GGUF" \(an HTML or JSON page/),
    });
    expect(readdirSync(to)).toEqual([]);
  });

  it("stable error codes: 404 not_found, no server unreachable, unknown repo forbidden, no such quant or split quant, disk full", async () => {
    host = await startFakeModelHost({ repos: repos(), files: [{ path: "m.gguf", bytes: model }] });
    const base = { modelsDir: modelsDir(), hubEndpoint: host.url, fetch, sleep: noSleep };
    await expect(installGguf({ ...base, reference: `${host.url}/files/nope.gguf` })).rejects.toMatchObject({ code: "not_found" });
    const closed = await freePort();
    await expect(installGguf({ ...base, reference: `http://127.0.0.1:${closed}/x.gguf` })).rejects.toMatchObject({ code: "unreachable", message: `cannot reach 127.0.0.1:${closed}: ECONNREFUSED` });
    await expect(installGguf({ ...base, reference: "hf:tessera/tiny-GGUF:Q4_K_M", hubEndpoint: `http://127.0.0.1:${closed}` })).rejects.toMatchObject({ code: "unreachable", message: expect.stringMatching(/cannot reach the hub/) });
    await expect(installGguf({ ...base, reference: "hf:nobody/nothing:Q4_K_M" })).rejects.toMatchObject({ code: "forbidden" });
    await expect(installGguf({ ...base, reference: "hf:tessera/tiny-GGUF:Q2_K" })).rejects.toMatchObject({ code: "not_found", message: expect.stringMatching(/has no Q2_K GGUF \(its GGUF files: tiny-Q8_0\.gguf, tiny-Q4_K_M\.gguf/) });
    await expect(installGguf({ ...base, reference: "hf:tessera/tiny-GGUF/nope.gguf" })).rejects.toMatchObject({ code: "not_found" });
    await expect(installGguf({ ...base, reference: "hf:tessera/tiny-GGUF/big/big-Q4_K_M-00001-of-00002.gguf" })).rejects.toMatchObject({ code: "bad_request", message: expect.stringMatching(/split into 2 files/) });
    await expect(installGguf({ ...base, reference: `${host.url}/files/m.gguf`, freeBytes: async () => 1000 })).rejects.toMatchObject({ code: "no_capacity", message: expect.stringMatching(/^disk full: .* to download but 0\.0 MB free/) });
  });

  it.runIf(existsSync("/dev/full"))("disk full while writing (ENOSPC, the .part on /dev/full): no_capacity, and the message says the part is kept", async () => {
    host = await startFakeModelHost({ files: [{ path: "m.gguf", bytes: model }] });
    const to = modelsDir();
    mkdirSync(to, { recursive: true });
    symlinkSync("/dev/full", join(to, "m.gguf.part"));
    await expect(installGguf({ reference: `${host.url}/files/m.gguf`, modelsDir: to, hubEndpoint: host.url, fetch, freeBytes: async () => undefined })).rejects.toMatchObject({
      code: "no_capacity", message: expect.stringMatching(/^disk full at 0\.0 MB of 0\.2 MB in .*; the partial file is kept \(.*m\.gguf\.part\): free some space and run the same command again$/),
    });
    expect(existsSync(join(to, "m.gguf"))).toBe(false);
  });
});
