import { afterAll, describe, expect, it } from "vitest";
import { ReplicaNetwork, natsServerBinary, probePostgresServer, startNatsServer } from "@tessera/testkit";

/**
 * `tessera coordinator start --bus nats://user:password@host:port` against a NATS server that asks for credentials
 * (one of this test's own, started from the machine's nats-server binary): the replica joins the bus with them, and
 * neither its start-up line nor its log shows the password. Under CI=true PostgreSQL and nats-server are mandatory;
 * elsewhere the suite is skipped with a notice when either is missing.
 */
// Test-only read of the environment: on CI the PostgreSQL and nats-server runs are mandatory.
const MANDATORY = process.env.CI === "true";
const binary = natsServerBinary();
const unreachable = (await probePostgresServer()) ?? (binary === undefined ? "nats-server (a binary on PATH or in /usr/sbin)" : undefined);
if (unreachable !== undefined && !MANDATORY) console.warn(`NOTICE: the bus with credentials e2e skipped: ${unreachable} did not answer.`);

describe.runIf(unreachable === undefined || MANDATORY)("a replica on a NATS server that asks for credentials", () => {
  let network: ReplicaNetwork | undefined;
  let server: Awaited<ReturnType<typeof startNatsServer>> | undefined;
  afterAll(async () => {
    await network?.stop();
    await server?.stop();
  });

  it("joins with the user and password --bus holds, and shows *** for the password on its start-up line and in its log", async () => {
    if (unreachable !== undefined) throw new Error(`${unreachable} did not answer (mandatory on CI)`);
    server = await startNatsServer(binary!, ["--user", "replica", "--pass", "pa55/word"]);
    network = await ReplicaNetwork.create({ bus: false });
    const replica = await network.startReplica("r-a", undefined, ["--bus", `nats://replica:pa55%2Fword@127.0.0.1:${server.port}`]);
    const text = replica.process.logText;
    expect(text).toContain(`bus: nats://replica:***@127.0.0.1:${server.port})`);
    expect(text).toMatch(/joined the replicas' bus/);
    expect(text).toContain(`"bus":"nats://replica:***@127.0.0.1:${server.port}"`);
    expect(text).not.toMatch(/pa55/);
  }, 90_000);
});
