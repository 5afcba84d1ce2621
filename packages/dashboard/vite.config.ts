import { defineConfig } from "vite";

/**
 * A static build into dist/: index.html plus content-hashed files under assets/, which the coordinator serves at `/`
 * (packages/coordinator/src/dashboard/static-routes.ts). Nothing is loaded from elsewhere at run time.
 */
export default defineConfig({
  root: import.meta.dirname,
  base: "/",
  esbuild: { jsx: "automatic", jsxImportSource: "preact" },
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2022",
    assetsDir: "assets",
    // Everything inline in the bundle is still same-origin; no data: URLs beyond what the CSP allows.
    assetsInlineLimit: 0,
    reportCompressedSize: true,
  },
});
