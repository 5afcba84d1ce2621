import { defineConfig } from "vitest/config";

/**
 * Vite's default server conditions (vite 7's defaultServerConditions) after ours, setting conditions replaces them;
 * less `module`: with it, dependencies Node loads itself resolve to ESM builds Node cannot load (`ai`'s
 * @opentelemetry/api build/esm imports files without extensions: "Cannot find module …/baggage/utils").
 */
const conditions = ["tessera-source", "node", "development|production"];

export default defineConfig({
  // Tests import the workspace packages from their TypeScript sources (each package.json's `tessera-source` export
  // condition); processes they spawn through packages/cli/bin/tessera.js run the compiled dist/, which the global
  // setup rebuilds first (see tools/vitest-build-dist.ts). Under CI=true it also builds the real llama-server once
  // (tools/vitest-build-llama-server.ts).
  ssr: { resolve: { conditions } },
  test: {
    include: ["packages/*/src/**/*.test.ts", "packages/*/test/**/*.test.ts"],
    globalSetup: ["tools/vitest-build-dist.ts", "tools/vitest-build-llama-server.ts"],
    pool: "forks",
    testTimeout: 60_000,
    hookTimeout: 120_000,
  },
});
