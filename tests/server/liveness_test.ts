/**
 * Node liveness (lib/server/cluster/liveness.ts, liveness_watcher.ts) on a real PostgreSQL: nodes
 * register and hold their locks, watchers report a node whose lock is gone exactly once across the
 * cluster (whether its connection was killed or its process was), never a live node, a node that
 * loses its connection says so, and one told to reconnect takes its lock back. Ticks are driven by
 * the tests or by a clock they control.
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import {
  createNodesTable,
  listNodes,
  NODE_LOCK_SPACE,
  NodeLease,
  type TickClock,
} from "../../lib/server/cluster/liveness.ts";
import {
  DEFAULT_WATCH_INTERVAL_MS,
  LivenessWatcher,
  type WatcherOptions,
} from "../../lib/server/cluster/liveness_watcher.ts";
import { MemoryLogger } from "../../lib/shared/logger.ts";
import { startLeaseHolder } from "../../testing/cluster_node.ts";
import { eventually } from "../../testing/eventually.ts";
import { postgresTest, sharedPostgres, startPostgres } from "../../testing/postgres.ts";

const test = postgresTest("Node liveness tests");

/** A fresh database with the nodes table, a pool on it, and everything made from it closed. */
async function cluster() {
  const url = await (await sharedPostgres()).createDatabase();
  const sql = postgres(url, { max: 4, onnotice: () => {} });
  await createNodesTable(sql);
  const leases: NodeLease[] = [];
  const pools: postgres.Sql[] = [sql];
  const watchers: LivenessWatcher[] = [];
  return {
    url,
    sql,
    /** Registers node `id`; `lost` collects what its onDisconnected says. */
    async lease(id: string, lost: string[] = []) {
      const lease = await NodeLease.acquire(url, { id, host: "10.0.0.1", port: 0 }, {
        onDisconnected: (reason) => lost.push(reason),
      });
      leases.push(lease);
      return lease;
    },
    /** A watcher on a pool of its own, as on another node; `reported` collects its reports. */
    watcher(reported: string[], options: Partial<WatcherOptions> = {}) {
      const pool = postgres(url, { max: 2, onnotice: () => {} });
      pools.push(pool);
      const watcher = new LivenessWatcher(pool, {
        onLost: (id) => reported.push(id),
        ...options,
      });
      watchers.push(watcher);
      return watcher;
    },
    async [Symbol.asyncDispose]() {
      for (const watcher of watchers) await watcher.stop();
      for (const lease of leases) await lease.release();
      for (const pool of pools) await pool.end({ timeout: 5 });
    },
  };
}

/** Kills the connection holding node `key`'s lock, as PostgreSQL or an operator would. */
async function killLeaseConnection(sql: postgres.Sql, key: number): Promise<void> {
  const killed = await sql`select pg_terminate_backend(pid, 5000) as done from pg_locks
    where locktype = 'advisory' and classid::bigint = ${NODE_LOCK_SPACE}
      and objid::bigint = ${key} and objsubid = 2`;
  assert.deepEqual(killed.map((row) => row.done), [true], `one connection holds lock ${key}`);
}

/** Ticks every watcher at once, `rounds` times; returns each round's reports. */
async function rounds(watchers: LivenessWatcher[], count: number): Promise<string[][]> {
  const seen: string[][] = [];
  for (let i = 0; i < count; i++) {
    seen.push((await Promise.all(watchers.map((w) => w.tick()))).flat());
  }
  return seen;
}

/** A clock whose timers run only when the test fires them. */
class ManualClock implements TickClock {
  #now = 0;
  #next = 1;
  readonly timers = new Map<number, { fn: () => void; ms: number }>();

  now(): number {
    return this.#now;
  }
  setTimeout(fn: () => void, ms: number): unknown {
    this.timers.set(this.#next, { fn, ms });
    return this.#next++;
  }
  clearTimeout(handle: unknown): void {
    this.timers.delete(handle as number);
  }
  advance(ms: number): void {
    this.#now += ms;
  }
  /** Moves the time on to the one pending timer and runs it; returns its delay. */
  fire(): number {
    assert.equal(this.timers.size, 1, "one timer pending");
    const [handle, timer] = [...this.timers][0]!;
    this.timers.delete(handle);
    this.#now += timer.ms;
    timer.fn();
    return timer.ms;
  }
}

test("createNodesTable is safe when several nodes start at once", async () => {
  const url = await (await sharedPostgres()).createDatabase();
  const pools = Array.from({ length: 4 }, () => postgres(url, { max: 1, onnotice: () => {} }));
  try {
    await Promise.all(pools.map((sql) => createNodesTable(sql)));
    assert.deepEqual(await listNodes(pools[0]!), []);
  } finally {
    await Promise.all(pools.map((sql) => sql.end({ timeout: 5 })));
  }
});

test("a node is registered while it holds its lease and leaves no trace when released", async () => {
  await using c = await cluster();
  const lease = await c.lease("alpha");
  assert.equal(lease.rejoined, false);
  assert.equal(lease.held, true);
  const [row] = await listNodes(c.sql);
  assert.equal(row?.id, "alpha");
  assert.equal(row?.key, lease.key);
  assert.equal(row?.host, "10.0.0.1");
  assert.equal(row?.port, 0);
  const reported: string[] = [];
  const watcher = c.watcher(reported);
  assert.deepEqual(await watcher.tick(), []);
  await lease.release();
  assert.equal(lease.held, false);
  assert.deepEqual(await listNodes(c.sql), []);
  assert.deepEqual(await watcher.tick(), []);
  assert.deepEqual(reported, [], "a node that leaves cleanly is not lost");
});

test("a second node cannot take the id of a live node", async () => {
  await using c = await cluster();
  const first = await c.lease("alpha");
  await assert.rejects(c.lease("alpha"), /Cannot register node alpha: a live node has that id/);
  assert.equal(first.held, true);
  assert.equal(await first.check(), true);
  assert.deepEqual((await listNodes(c.sql)).map((n) => n.key), [first.key]);
});

test("live nodes are never reported, however often their watchers look", async () => {
  await using c = await cluster();
  const lost: string[] = [];
  const leases = [await c.lease("a", lost), await c.lease("b", lost), await c.lease("c", lost)];
  const reported: string[] = [];
  const watchers = leases.map((lease) => c.watcher(reported, { lease }));
  watchers.push(c.watcher(reported));
  await rounds(watchers, 20);
  assert.deepEqual(reported, []);
  assert.deepEqual(lost, []);
  assert.deepEqual((await listNodes(c.sql)).map((n) => n.id), ["a", "b", "c"]);
});

test("a node whose connection is killed says so and is reported once by one of two watchers", async () => {
  await using c = await cluster();
  const lost: string[] = [];
  const victim = await c.lease("victim", lost);
  const b = await c.lease("b");
  const d = await c.lease("d");
  const reported: string[] = [];
  const watchers = [c.watcher(reported, { lease: b }), c.watcher(reported, { lease: d })];
  await killLeaseConnection(c.sql, victim.key);
  await eventually("the victim noticing", () => lost.length > 0);
  assert.deepEqual(lost, ["its PostgreSQL connection closed"]);
  assert.equal(victim.held, false);
  assert.equal(await victim.check(), false);
  // The lock went with the connection, so the first look finds it.
  assert.deepEqual(await rounds(watchers, 1), [["victim"]]);
  assert.deepEqual(await rounds(watchers, 5), [[], [], [], [], []], "reported only once");
  assert.deepEqual(reported, ["victim"]);
  assert.deepEqual(lost.length, 1, "onDisconnected is called once");
  assert.deepEqual((await listNodes(c.sql)).map((n) => n.id), ["b", "d"]);
});

test("many nodes lost at once are each reported exactly once by watchers looking together", async () => {
  await using c = await cluster();
  const victims = [];
  for (let i = 0; i < 10; i++) victims.push(await c.lease(`v${i}`));
  const survivor = await c.lease("survivor");
  const reported: string[] = [];
  const watchers = [
    c.watcher(reported, { lease: survivor }),
    c.watcher(reported),
    c.watcher(reported),
  ];
  await Promise.all(victims.map((victim) => killLeaseConnection(c.sql, victim.key)));
  await rounds(watchers, 3);
  assert.deepEqual(reported.toSorted(), victims.map((v) => v.node.id).toSorted());
  assert.deepEqual((await listNodes(c.sql)).map((n) => n.id), ["survivor"]);
});

test("a node process killed with SIGKILL is reported lost by one watcher within a few ticks", async () => {
  await using c = await cluster();
  const live = await c.lease("live");
  const reported: string[] = [];
  const watchers = [c.watcher(reported, { lease: live }), c.watcher(reported)];
  await using holder = await startLeaseHolder(c.url, "doomed");
  assert.deepEqual((await listNodes(c.sql)).map((n) => n.id), ["live", "doomed"]);
  assert.deepEqual(await rounds(watchers, 3), [[], [], []], "not while it runs");
  holder.process.kill("SIGKILL");
  await holder.process.status;
  // PostgreSQL ends the backend when it reads the closed socket; the watchers see it then.
  let ticks = 0;
  await eventually("the killed node reported", async () => {
    ticks++;
    return (await rounds(watchers, 1)).flat().length > 0;
  });
  assert.ok(ticks <= 100, `reported after ${ticks} rounds of ticks`);
  assert.deepEqual(await rounds(watchers, 3), [[], [], []]);
  assert.deepEqual(reported, ["doomed"]);
  assert.deepEqual((await listNodes(c.sql)).map((n) => n.id), ["live"]);
});

test("a watcher whose own lease is lost reports nobody", async () => {
  await using c = await cluster();
  const own = await c.lease("own");
  const other = await c.lease("other");
  const reported: string[] = [];
  const watcher = c.watcher(reported, { lease: own });
  await killLeaseConnection(c.sql, other.key);
  await killLeaseConnection(c.sql, own.key);
  await eventually("the own lease lost", () => !own.held);
  assert.deepEqual(await watcher.tick(), []);
  assert.deepEqual(reported, []);
  assert.equal((await listNodes(c.sql)).length, 2, "rows left for a live node's watcher");
});

test("a node that rejoins under its id before anyone looks is not reported", async () => {
  await using c = await cluster();
  const lost: string[] = [];
  const first = await c.lease("alpha", lost);
  await killLeaseConnection(c.sql, first.key);
  await eventually("the lease lost", () => lost.length === 1);
  const again = await c.lease("alpha");
  assert.equal(again.rejoined, true);
  assert.equal(again.key, first.key);
  const reported: string[] = [];
  assert.deepEqual(await rounds([c.watcher(reported)], 3), [[], [], []]);
});

test("a node that rejoins after being reported lost learns it was", async () => {
  await using c = await cluster();
  const first = await c.lease("alpha");
  await killLeaseConnection(c.sql, first.key);
  const reported: string[] = [];
  assert.deepEqual(await c.watcher(reported).tick(), ["alpha"]);
  const again = await c.lease("alpha");
  assert.equal(again.rejoined, false);
  assert.notEqual(again.key, first.key);
});

test("with a grace period a node is reported once its lock has been gone that long", async () => {
  await using c = await cluster();
  const clock = new ManualClock();
  const reported: string[] = [];
  const watcher = c.watcher(reported, { clock, graceMs: 4_000 });
  const quick = await c.lease("quick");
  const slow = await c.lease("slow");
  await killLeaseConnection(c.sql, quick.key);
  await killLeaseConnection(c.sql, slow.key);
  assert.deepEqual(await watcher.tick(), [], "first seen gone");
  clock.advance(3_999);
  assert.deepEqual(await watcher.tick(), []);
  await c.lease("quick"); // Back in time.
  clock.advance(1);
  assert.deepEqual(await watcher.tick(), ["slow"]);
  clock.advance(10_000);
  assert.deepEqual(await watcher.tick(), []);
  assert.deepEqual(reported, ["slow"]);
});

test("a started watcher ticks on its clock, every 2 s unless given an interval", async () => {
  await using c = await cluster();
  const clock = new ManualClock();
  const reported: string[] = [];
  const watcher = c.watcher(reported, { clock });
  watcher.start();
  watcher.start();
  assert.equal(clock.timers.size, 1);
  assert.equal(clock.fire(), DEFAULT_WATCH_INTERVAL_MS);
  await eventually("the next tick scheduled", () => clock.timers.size === 1);
  const victim = await c.lease("victim");
  await killLeaseConnection(c.sql, victim.key);
  assert.equal(clock.fire(), 2_000);
  await eventually("the victim reported", () => reported.length > 0);
  await eventually("the next tick scheduled", () => clock.timers.size === 1);
  assert.deepEqual(reported, ["victim"]);
  await watcher.stop();
  assert.equal(clock.timers.size, 0, "stopped: nothing scheduled");

  const quicker = c.watcher([], { clock, intervalMs: 500 });
  quicker.start();
  assert.equal(clock.fire(), 500);
  await eventually("the next tick scheduled", () => clock.timers.size === 1);
  await quicker.stop();
  assert.equal(clock.timers.size, 0);
});

test("when the database restarts, every node notices and may rejoin under its id", async () => {
  await using server = await startPostgres();
  const sql = postgres(server.url, { max: 2, onnotice: () => {} });
  const leases: NodeLease[] = [];
  try {
    await createNodesTable(sql);
    const lost = { a: [] as string[], b: [] as string[] };
    const acquire = async (id: "a" | "b") => {
      const lease = await NodeLease.acquire(server.url, { id, host: "h", port: 1 }, {
        onDisconnected: (reason) => lost[id].push(reason),
      });
      leases.push(lease);
      return lease;
    };
    const [a, b] = [await acquire("a"), await acquire("b")];
    await server.restart();
    await eventually("both nodes noticing", () => lost.a.length === 1 && lost.b.length === 1);
    assert.deepEqual(lost, {
      a: ["its PostgreSQL connection closed"],
      b: ["its PostgreSQL connection closed"],
    });
    assert.equal(a.held || b.held, false);
    // Node a is back first: it takes its row back, unreported.
    const a2 = await eventually("node a back", () => acquire("a").catch(() => undefined));
    assert.equal(a2.rejoined, true);
    const reported: string[] = [];
    const watcher = new LivenessWatcher(sql, { lease: a2, onLost: (id) => reported.push(id) });
    // The pool's first query may meet a connection that died with the server.
    await eventually("node b reported", async () => (await watcher.tick()).length > 0);
    assert.deepEqual(reported, ["b"]);
    const b2 = await acquire("b");
    assert.equal(b2.rejoined, false, "b learns it was reported lost");
    assert.deepEqual(await watcher.tick(), []);
  } finally {
    for (const lease of leases) await lease.release();
    await sql.end({ timeout: 5 });
  }
});

test("a watcher that cannot reach PostgreSQL says so once and carries on", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  const sql = postgres(`postgres://postgres@127.0.0.1:${port}/toom`, {
    max: 1,
    connect_timeout: 5,
    onnotice: () => {},
  });
  try {
    const logger = new MemoryLogger();
    const watcher = new LivenessWatcher(sql, { onLost: () => {}, logger });
    assert.deepEqual(await watcher.tick(), []);
    assert.deepEqual(await watcher.tick(), []);
    assert.equal(logger.warnings.length, 1);
    assert.match(logger.warnings[0]!, /^Could not look for lost nodes: /);
  } finally {
    await sql.end({ timeout: 0 });
  }
});

test("a lease told to reconnect takes its lock back, backing off meanwhile, and says if it was reported lost", async () => {
  await using c = await cluster();
  const timers = new ManualClock();
  const lost: string[] = [];
  const regained: boolean[] = [];
  const lease = await NodeLease.acquire(c.url, { id: "alpha", host: "h", port: 1 }, {
    onDisconnected: (reason) => lost.push(reason),
    reconnect: { timers, onRegained: ({ declaredLost }) => regained.push(declaredLost) },
  });
  const scheduled = () => eventually("the next try scheduled", () => timers.timers.size === 1);
  try {
    const first = lease.key;
    await killLeaseConnection(c.sql, first);
    await scheduled();
    assert.deepEqual(lost, ["its PostgreSQL connection closed"]);
    assert.equal(lease.held, false);
    // Another run holds the id meanwhile: the tries fail, each further apart, up to 1 s.
    const usurper = await c.lease("alpha");
    const delays = [];
    for (let i = 0; i < 5; i++) {
      delays.push(timers.fire());
      await scheduled();
    }
    assert.deepEqual(delays, [100, 200, 400, 800, 1_000]);
    // Its row gone (as when a watcher reports the node lost), the next try registers afresh.
    await usurper.release();
    timers.fire();
    await eventually("the lock taken back", () => lease.held);
    assert.deepEqual(regained, [true]);
    assert.notEqual(lease.key, first);
    assert.equal(lease.rejoined, false);

    // Lost again and back before anyone reports it: the same row, and nothing was declared.
    const second = lease.key;
    await killLeaseConnection(c.sql, second);
    await scheduled();
    timers.fire();
    await eventually("the lock taken back again", () => lease.held);
    assert.deepEqual(regained, [true, false]);
    assert.deepEqual([lease.key, lease.rejoined, await lease.check()], [second, true, true]);
    assert.equal(lost.length, 2);
  } finally {
    await lease.release();
  }
  assert.deepEqual(await listNodes(c.sql), []);
});
