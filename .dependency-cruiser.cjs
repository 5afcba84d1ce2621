/**
 * The house rules `npm test` checks (npm run check:deps): no import cycles anywhere in shipped code, and packages
 * depending one way only: cli → sdk, node, coordinator → protocol; protocol imports nothing of ours; the testkit is
 * for tests, benches and dev tooling. Type-only imports count too: a cycle of types is still a tangle.
 */
const pkg = (name) => `^packages/${name}/src/`;

module.exports = {
  forbidden: [
    { name: "no-circular", severity: "error", comment: "an import cycle", from: { path: "^packages/[^/]+/src/" }, to: { circular: true } },
    {
      name: "protocol-imports-nothing-of-ours",
      severity: "error",
      from: { path: pkg("protocol") },
      to: { path: "^packages/(sdk|coordinator|node|cli|testkit)/" },
    },
    { name: "sdk-only-on-protocol", severity: "error", from: { path: pkg("sdk") }, to: { path: "^packages/(coordinator|node|cli|testkit)/" } },
    { name: "coordinator-not-on-node-cli-sdk", severity: "error", from: { path: pkg("coordinator") }, to: { path: "^packages/(node|cli|sdk|testkit)/" } },
    { name: "node-not-on-coordinator-cli-sdk", severity: "error", from: { path: pkg("node") }, to: { path: "^packages/(coordinator|cli|sdk|testkit)/" } },
    {
      name: "dashboard-only-on-protocol",
      severity: "error",
      comment: "the dashboard is browser code: it talks to the coordinator over HTTP and takes only types from protocol",
      from: { path: pkg("dashboard") },
      to: { path: "^packages/(sdk|coordinator|node|cli|testkit)/" },
    },
    {
      name: "shipped-code-not-on-testkit",
      severity: "error",
      comment: "`tessera up` makes its demo models (chat, and embeddings in up-embeddings.ts) with the testkit's GGUF maker: the one known exception (noted for the CLI issue)",
      from: { path: pkg("cli"), pathNot: "^packages/cli/src/commands/up(-embeddings)?\\.ts$" },
      to: { path: "^packages/testkit/" },
    },
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: "tsconfig.json" },
    // Workspace packages resolve through their package.json "exports" to their TypeScript sources (the `tessera-source` condition).
    enhancedResolveOptions: { exportsFields: ["exports"], conditionNames: ["tessera-source", "import", "default"], extensions: [".ts", ".tsx", ".js"] },
    exclude: { path: "\\.test\\.ts$|/test/|store-contract-suite\\.ts$|postgres-test-support\\.ts$" },
  },
};
