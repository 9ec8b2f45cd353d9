/**
 * Chat servers as nodes of one cluster, for tests: each a server of server_fixture.ts (memory
 * files, a fake clock, in-memory clients) whose config carries a cluster opened on a PostgreSQL
 * database (openCluster), closed after its server. Its liveness watcher and its upkeep (progress,
 * checkpoints, pruning) tick only when the test moves its clock on (`ticks.advance`), and a lease
 * it lost is tried again only when the test moves another on (`leaseTicks.advance`).
 */
import {
  type ClusterNode,
  type ClusterOptions,
  openCluster,
} from "../lib/server/cluster/cluster.ts";
import type { TickClock } from "../lib/server/cluster/liveness.ts";
import { FakeClock } from "../lib/shared/clock.ts";
import { MemoryLogger } from "../lib/shared/logger.ts";
import { sharedPostgres } from "./postgres.ts";
import { loggedIn, startServer, type TestClient, type TestServer } from "./server_fixture.ts";

/** Timers that run only when a test moves the time on. */
export class ManualTickClock implements TickClock {
  #now = 0;
  #next = 1;
  readonly #timers = new Map<number, { fn: () => void; due: number }>();

  now(): number {
    return this.#now;
  }

  setTimeout(fn: () => void, ms: number): unknown {
    this.#timers.set(this.#next, { fn, due: this.#now + ms });
    return this.#next++;
  }

  clearTimeout(handle: unknown): void {
    this.#timers.delete(handle as number);
  }

  /** Moves the time on by `ms` and runs the timers due by then, in the order they fall due. */
  advance(ms: number): void {
    this.#now += ms;
    const due = [...this.#timers].filter(([, timer]) => timer.due <= this.#now)
      .sort(([, a], [, b]) => a.due - b.due);
    for (const [handle, timer] of due) {
      this.#timers.delete(handle);
      timer.fn();
    }
  }
}

/** A test server that is a cluster node; closing it closes the node too. */
export interface ClusterTestServer extends TestServer {
  readonly cluster: ClusterNode;
  /** The clock of the node's liveness watcher. */
  readonly ticks: ManualTickClock;
  /** The timers between the node's tries to take back a lost lease. */
  readonly leaseTicks: ManualTickClock;
}

/**
 * Joins node `node` to the cluster on the database at `url` and starts a server on it; `options`
 * tune the node's upkeep (checkpoints, progress, pruning) and its proposals' deadline.
 */
export async function startClusterServer(
  url: string,
  node: string,
  overrides: Parameters<typeof startServer>[0] = {},
  options: Pick<ClusterOptions, "upkeep" | "deadline"> = {},
): Promise<ClusterTestServer> {
  const ticks = new ManualTickClock();
  const leaseTicks = new ManualTickClock();
  const cluster = await openCluster(url, {
    ...options,
    node,
    clock: new FakeClock(),
    logger: new MemoryLogger(),
    ticks,
    leaseTimers: leaseTicks,
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
  return { ...test, cluster, ticks, leaseTicks, close, [Symbol.asyncDispose]: close };
}

/** The overrides of every node a test starts with {@linkcode startNodes} unless it says otherwise. */
const NODE_CONFIG = { commandBurst: 100 };

/** Cluster nodes on one database, started by a test and closed together, the last first. */
export interface ClusterNodes extends AsyncDisposable {
  readonly url: string;
  /** Starts node `node` on the database, with `overrides` over the nodes' own. */
  start(node: string, overrides?: Parameters<typeof startServer>[0]): Promise<ClusterTestServer>;
  close(): Promise<void>;
}

/**
 * Nodes on the database at `url` (a fresh one of the file's shared PostgreSQL when not given), each
 * started with `overrides` (and a command burst of 100, so tests are not rate limited).
 */
export async function startNodes(
  overrides: Parameters<typeof startServer>[0] = {},
  url?: string,
): Promise<ClusterNodes> {
  const database = url ?? await (await sharedPostgres()).createDatabase();
  const started: ClusterTestServer[] = [];
  const close = async () => {
    for (const node of started.splice(0).reverse()) await node.close();
  };
  return {
    url: database,
    async start(node, more = {}) {
      const server = await startClusterServer(database, node, {
        ...NODE_CONFIG,
        ...overrides,
        ...more,
      });
      started.push(server);
      return server;
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}

/** Two nodes, `node-1` and `node-2`, on one database (see {@linkcode startNodes}). */
export interface TwoNodes extends ClusterNodes {
  readonly one: ClusterTestServer;
  readonly two: ClusterTestServer;
}

/** Starts `node-1` and `node-2` as {@linkcode startNodes} does; closes both if either fails. */
export async function twoNodes(
  overrides: Parameters<typeof startServer>[0] = {},
  url?: string,
): Promise<TwoNodes> {
  const nodes = await startNodes(overrides, url);
  try {
    const one = await nodes.start("node-1");
    const two = await nodes.start("node-2");
    return Object.assign(nodes, { one, two });
  } catch (error) {
    await nodes.close();
    throw error;
  }
}

/** Two nodes with yoda logged in on the first and hans on the second. */
export interface YodaAndHans extends TwoNodes {
  readonly yoda: TestClient;
  readonly hans: TestClient;
}

/**
 * {@linkcode twoNodes} with yoda logged in on node 1 (UDP port 8001) and hans on node 2 (8002),
 * once yoda has been told hans logged in (node 1 has applied both logins).
 */
export async function yodaAndHans(
  overrides: Parameters<typeof startServer>[0] = {},
): Promise<YodaAndHans> {
  const nodes = await twoNodes(overrides);
  try {
    const yoda = await loggedIn(nodes.one, "yoda", "jedi", 8001);
    const hans = await loggedIn(nodes.two, "hans", "falcon", 8002);
    await yoda.waitFor("hans logged in");
    return Object.assign(nodes, { yoda, hans });
  } catch (error) {
    await nodes.close();
    throw error;
  }
}
