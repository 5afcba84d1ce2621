// `node --import ./register.mjs …` records every module the process loads into the file named by
// TESSERA_RECORD_LOADS, one URL a line: ES modules as the loader resolves them (hooks.mjs, on the loader's thread),
// CommonJS modules from require.cache at exit (a CommonJS package's own requires never pass the ESM hooks).
import { appendFileSync } from "node:fs";
import { createRequire, register } from "node:module";
import { pathToFileURL } from "node:url";

const file = process.env.TESSERA_RECORD_LOADS;
if (!file) throw new Error("set TESSERA_RECORD_LOADS to the file to record loaded modules in");
register("./hooks.mjs", import.meta.url, { data: { file } });
process.on("exit", () => {
  const cached = Object.keys(createRequire(import.meta.url).cache).map((path) => pathToFileURL(path).href);
  appendFileSync(file, cached.map((url) => `${url}\n`).join(""));
});
