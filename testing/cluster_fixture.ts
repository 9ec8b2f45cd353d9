/**
 * Chat servers as nodes of one cluster, for tests: each a server of server_fixture.ts (memory
 * files, a fake clock, in-memory clients) whose config carries a cluster opened on a PostgreSQL
 * database (openCluster), closed after its server.
 */
import { type ClusterNode, openCluster } from "../lib/server/cluster/cluster.ts";
import { FakeClock } from "../lib/shared/clock.ts";
import { MemoryLogger } from "../lib/shared/logger.ts";
import { startServer, type TestServer } from "./server_fixture.ts";

/** A test server that is a cluster node; closing it closes the node too. */
export interface ClusterTestServer extends TestServer {
  readonly cluster: ClusterNode;
}

/** Joins node `node` to the cluster on the database at `url` and starts a server on it. */
export async function startClusterServer(
  url: string,
  node: string,
  overrides: Parameters<typeof startServer>[0] = {},
): Promise<ClusterTestServer> {
  const cluster = await openCluster(url, {
    node,
    clock: new FakeClock(),
    logger: new MemoryLogger(),
  });
  let test: TestServer;
  try {
    test = await startServer({ ...overrides, cluster });
  } catch (error) {
    await cluster.close();
    throw error;
  }
  let closing: Promise<void> | undefined;
  const close = () =>
    closing ??= (async () => {
      try {
        await test.close();
      } finally {
        await cluster.close();
      }
    })();
  return { ...test, cluster, close, [Symbol.asyncDispose]: close };
}
