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
import { startServer, type TestServer } from "./server_fixture.ts";

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
 * tune the node's upkeep (checkpoints, progress, pruning).
 */
export async function startClusterServer(
  url: string,
  node: string,
  overrides: Parameters<typeof startServer>[0] = {},
  options: Pick<ClusterOptions, "upkeep"> = {},
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
