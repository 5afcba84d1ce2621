/**
 * The house rules `npm test` checks (npm run check:deps): no import cycles anywhere in shipped code, and packages
 * depending one way only: cli → sdk, node, coordinator → protocol; protocol imports nothing of ours; the testkit is
 * for tests, benches and dev tooling. Inside the coordinator, the job machinery sits below what carries jobs out
 * (packages/coordinator/src/workers/design.md): coordinator, app → routes → sessions, sharding → jobs → workers/ (the
 * ports). Type-only imports count too: a cycle of types is still a tangle.
 */
const pkg = (name) => `^packages/${name}/src/`;
const coord = (paths) => `^packages/coordinator/src/(${paths})`;
/** The coordinator's composition root and the HTTP edge: only the wiring above them may import them. */
const EDGE = "routes/|dashboard/|context\\.ts$|app\\.ts$|coordinator\\.ts$|index\\.ts$";

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
      name: "coordinator-worker-ports-on-protocol-only",
      severity: "error",
      comment: "Worker and JobSink are the contract between the job machinery and whatever runs a job; they name no implementation",
      from: { path: coord("workers/") },
      to: { path: pkg("coordinator"), pathNot: coord("workers/") },
    },
    {
      name: "coordinator-jobs-below-workers-and-edge",
      severity: "error",
      comment: "the job machinery reaches workers only through the ports: never a session, the sharding manager, a route or the wiring",
      from: { path: coord("jobs/") },
      to: { path: coord(`sessions/|sharding/|http/|${EDGE}`) },
    },
    {
      name: "coordinator-workers-below-edge",
      severity: "error",
      comment: "sessions and pipelines are wired in by coordinator.ts; they never reach up to a route or the wiring",
      from: { path: coord("sessions/|sharding/") },
      to: { path: coord(EDGE) },
    },
    {
      name: "coordinator-routes-take-explicit-deps",
      severity: "error",
      comment: "each route names the parts it uses (its *RouteDeps); only app.ts and coordinator.ts know the whole context",
      from: { path: coord("routes/") },
      to: { path: coord("context\\.ts$|app\\.ts$|coordinator\\.ts$|index\\.ts$") },
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
    exclude: { path: "\\.test\\.ts$|/test/|store-contract-suite\\.ts$|test-support\\.ts$" },
  },
};
