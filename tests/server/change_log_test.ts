/**
 * The change log (lib/server/cluster/change_log.ts) on a real PostgreSQL: storages opened with
 * `logChangesAs` append what they commit, in the same transaction; tails on other pools hand on
 * every change once, in one order that is the commit order, after a database restart too; a
 * failed commit appends nothing; pruning. Each test gets a fresh database on the file's throwaway
 * server, except the restart test, which has a server of its own.
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import { type Bus, MemoryBusHub } from "../../lib/server/cluster/bus.ts";
import {
  appendChanges,
  ChangeTail,
  type ChangeTailOptions,
  DEFAULT_TAIL_INTERVAL_MS,
  type LoggedChange,
  pruneChanges,
  readChanges,
} from "../../lib/server/cluster/change_log.ts";
import type { TickClock } from "../../lib/server/cluster/liveness.ts";
import { PostgresBus } from "../../lib/server/cluster/postgres_bus.ts";
import type { Change, MailRecord } from "../../lib/server/store/journal.ts";
import {
  PG_MIGRATIONS,
  PG_SCHEMA_VERSION,
  PG_VERSION_TABLE,
  PG_VERSION_TABLE_SQL,
} from "../../lib/server/store/pg_schema.ts";
import { openPostgresStorage, type PostgresStorage } from "../../lib/server/store/postgres.ts";
import { FakeClock } from "../../lib/shared/clock.ts";
import { eventually } from "../../testing/eventually.ts";
import { postgresTest, sharedPostgres, startPostgres } from "../../testing/postgres.ts";

const test = postgresTest("Change log tests");

/** A clock whose timers run only when the test fires them. */
class ManualClock implements TickClock {
  #next = 1;
  readonly timers = new Map<number, { fn: () => void; ms: number }>();

  now(): number {
    return 0;
  }
  setTimeout(fn: () => void, ms: number): unknown {
    this.timers.set(this.#next, { fn, ms });
    return this.#next++;
  }
  clearTimeout(handle: unknown): void {
    this.timers.delete(handle as number);
  }
  /** Runs every timer pending now. */
  fireAll(): void {
    const due = [...this.timers];
    this.timers.clear();
    for (const [, timer] of due) timer.fn();
  }
}

/** A change that names something to tell it apart by. */
function seen(user: string): Change {
  return { t: "seen", user, time: 1 };
}

/** What to tell the changes a tail handed on apart by. */
function names(entries: LoggedChange[]): string[] {
  return entries.map(({ change }) => change.t === "seen" ? change.user : change.t);
}

/** Storages and tails on one database, as nodes would have them, all closed at the end. */
async function cluster(url?: string) {
  url ??= await (await sharedPostgres()).createDatabase();
  const storages: PostgresStorage[] = [];
  const tails: ChangeTail[] = [];
  const closers: Array<() => Promise<void>> = [];
  const admin = postgres(url, { max: 2, onnotice: () => {} });
  closers.push(() => admin.end({ timeout: 5 }));
  return {
    url,
    admin,
    /** Node `id`'s storage, appending what it commits to the log. */
    async node(id: string) {
      const storage = await openPostgresStorage(url, {
        clock: new FakeClock(),
        logChangesAs: id,
        connectTimeout: 2,
      });
      storages.push(storage);
      return storage;
    },
    /**
     * A started tail on a pool and bus of its own (a PostgreSQL bus unless given one); `entries`
     * collects what it hands on.
     */
    async tail(options: Partial<ChangeTailOptions> & { bus?: Bus } = {}) {
      const { bus: given, ...rest } = options;
      const sql = postgres(url, { max: 2, onnotice: () => {} });
      const bus = given ?? PostgresBus.connect(url);
      closers.push(async () => {
        await bus.close();
        await sql.end({ timeout: 5 });
      });
      const entries: LoggedChange[] = [];
      const tail = new ChangeTail(sql, bus, {
        onChange: (seq, node, change) => void entries.push({ seq, node, change }),
        ...rest,
      });
      tails.push(tail);
      await tail.start();
      return { tail, entries };
    },
    /** The whole log, as the table holds it. */
    log: () => readChanges(admin, 0, 10_000),
    async [Symbol.asyncDispose]() {
      for (const tail of tails) await tail.stop();
      for (const storage of storages) await storage.close();
      for (const close of closers.reverse()) await close();
    },
  };
}

test("a database of layout version 1 gets the change log; without logChangesAs nothing is logged", async () => {
  const url = await (await sharedPostgres()).createDatabase();
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  try {
    await sql.unsafe(PG_VERSION_TABLE_SQL);
    await sql.unsafe(PG_MIGRATIONS[0]!);
    await sql.unsafe(`INSERT INTO ${PG_VERSION_TABLE} (version) VALUES (1)`);
    const storage = await openPostgresStorage(url, { clock: new FakeClock() });
    await storage.record(seen("yoda"));
    await storage.close();
    const versions = await sql.unsafe(`SELECT version FROM ${PG_VERSION_TABLE} ORDER BY version`);
    assert.deepEqual(versions.map((row) => row.version), [1, 2, 3, 4]);
    assert.equal(PG_SCHEMA_VERSION, 4);
    assert.deepEqual([...await sql`select "user" from seen`].map((row) => row.user), ["yoda"]);
    assert.deepEqual(await readChanges(sql, 0, 10), []);
  } finally {
    await sql.end();
  }
});

test("two nodes committing at once: two tails hand on the same changes, once each, in commit order", async () => {
  await using db = await cluster();
  const [a, b] = [await db.node("a"), await db.node("b")];
  const first = await db.tail();
  const second = await db.tail();
  const COUNT = 40;
  /** Records COUNT changes four at a time; returns them in the order their commits ended. */
  const write = async (storage: PostgresStorage, id: string) => {
    const committed: string[] = [];
    for (let i = 0; i < COUNT; i += 4) {
      const users = [0, 1, 2, 3].map((k) => `${id}${i + k}`);
      await Promise.all(users.map((user) => storage.record(seen(user)).then(() => user)))
        .then((done) => committed.push(...done));
    }
    return committed;
  };
  const [byA, byB] = await Promise.all([write(a, "a"), write(b, "b")]);
  for (const { entries } of [first, second]) {
    await eventually("every change at both tails", () => entries.length >= 2 * COUNT);
  }
  const log = await db.log();
  assert.equal(log.length, 2 * COUNT);
  assert.deepEqual(first.entries, log, "the first tail saw the log as it is, in seq order");
  assert.deepEqual(second.entries, log, "the second tail saw the same");
  const seqs = log.map(({ seq }) => seq);
  assert.deepEqual(seqs, [...seqs].sort((x, y) => x - y));
  assert.equal(new Set(seqs).size, seqs.length);
  assert.deepEqual(names(log.filter(({ node }) => node === "a")), byA, "a's in a's commit order");
  assert.deepEqual(names(log.filter(({ node }) => node === "b")), byB, "b's in b's commit order");
  assert.equal(first.tail.lastSeq, seqs.at(-1));
});

test("seq order is commit order: an append waits for the open transaction that appended first", async () => {
  await using db = await cluster();
  const b = await db.node("b");
  const { entries } = await db.tail();
  let release = () => {};
  const gate = new Promise<void>((resolve) => release = resolve);
  const early = db.admin.begin(async (tx) => {
    const seq = await appendChanges(tx, "a", [seen("early")]);
    await gate;
    return seq;
  });
  // Awaited below, where a failure fails the test; meanwhile it must not go unhandled.
  early.catch(() => {});
  // The late one is sure to start after the early one has its number and lock.
  await eventually("the early append holding the lock", async () => {
    const [row] = await db.admin`select count(*)::int as n from pg_locks
      where locktype = 'advisory' and granted
        and database = (select oid from pg_database where datname = current_database())`;
    return row?.n === 1;
  });
  const late = b.record(seen("late"));
  late.catch(() => {});
  await eventually("the late append waiting for the lock", async () => {
    const [row] = await db.admin`select count(*)::int as n from pg_locks
      where locktype = 'advisory' and not granted
        and database = (select oid from pg_database where datname = current_database())`;
    return row?.n === 1;
  });
  assert.equal(entries.length, 0, "nothing is committed yet");
  release();
  const earlySeq = await early;
  await late;
  await eventually("both changes at the tail", () => entries.length === 2);
  assert.deepEqual(names(entries), ["early", "late"]);
  assert.equal(entries[0]!.seq, earlySeq);
  assert.ok(entries[0]!.seq < entries[1]!.seq);
});

test("a commit that fails appends nothing", async () => {
  await using db = await cluster();
  const a = await db.node("a");
  const { tail, entries } = await db.tail();
  const mail: MailRecord = { id: 1, to: "yoda", from: "hans", line: "hi", ref: "r1", time: 1 };
  await a.record({ t: "mail", mail });
  // One batch: the duplicate id fails the transaction, and the change before it goes with it.
  const failed = await Promise.allSettled([a.record(seen("lost")), a.record({ t: "mail", mail })]);
  assert.deepEqual(failed.map(({ status }) => status), ["rejected", "rejected"]);
  await a.record(seen("after"));
  await eventually("the two committed changes at the tail", () => entries.length === 2);
  const log = await db.log();
  assert.deepEqual(names(log), ["mail", "after"]);
  assert.deepEqual(entries, log);
  assert.deepEqual(log[0]!.change, { t: "mail", mail });
  assert.equal(tail.lastSeq, log[1]!.seq);
});

test("a tail started after a seq hands on only what follows it", async () => {
  await using db = await cluster();
  const a = await db.node("a");
  for (const user of ["c1", "c2", "c3", "c4", "c5"]) await a.record(seen(user));
  const log = await db.log();
  const { tail, entries } = await db.tail({ after: log[2]!.seq });
  await eventually("the tail at the end of the log", () => tail.lastSeq === log[4]!.seq);
  assert.deepEqual(names(entries), ["c4", "c5"]);
});

test("a tail told to skip its own node's changes passes over them, and past them", async () => {
  await using db = await cluster();
  const [a, b] = [await db.node("a"), await db.node("b")];
  const { tail, entries } = await db.tail({ skipNode: "a" });
  for (const [storage, user] of [[a, "a1"], [b, "b1"], [a, "a2"], [b, "b2"], [a, "a3"]] as const) {
    await storage.record(seen(user));
  }
  const log = await db.log();
  await eventually("the tail at the end of the log", () => tail.lastSeq === log.at(-1)!.seq);
  assert.deepEqual(names(entries), ["b1", "b2"]);
  assert.deepEqual(entries.map(({ node }) => node), ["b", "b"]);
});

test("changes are handed on one at a time: a slow callback delays the next", async () => {
  await using db = await cluster();
  const a = await db.node("a");
  const waiting: Array<() => void> = [];
  const handed: string[] = [];
  let busy = 0;
  let mostBusy = 0;
  await db.tail({
    batchSize: 2,
    onChange: async (_seq, _node, change) => {
      mostBusy = Math.max(mostBusy, ++busy);
      await new Promise<void>((resolve) => waiting.push(resolve));
      busy--;
      handed.push(names([{ seq: 0, node: "", change }])[0]!);
    },
  });
  for (const user of ["s1", "s2", "s3", "s4", "s5"]) await a.record(seen(user));
  for (let i = 1; i <= 5; i++) {
    await eventually(`change ${i} handed on`, () => waiting.length === 1 && busy === 1);
    assert.equal(handed.length, i - 1);
    waiting.pop()!();
  }
  await eventually("the last call done", () => handed.length === 5);
  assert.deepEqual(handed, ["s1", "s2", "s3", "s4", "s5"]);
  assert.equal(mostBusy, 1);
});

test("without notifications, the failsafe timer finds new changes", async () => {
  await using db = await cluster();
  const a = await db.node("a");
  await a.record(seen("before"));
  const clock = new ManualClock();
  // A bus of its own: it hears no notification from the database.
  const { entries } = await db.tail({ bus: new MemoryBusHub().connect(), clock });
  await eventually("what was there at start", () => entries.length === 1);
  await a.record(seen("later"));
  assert.deepEqual([...clock.timers.values()].map(({ ms }) => ms), [DEFAULT_TAIL_INTERVAL_MS]);
  assert.deepEqual(names(entries), ["before"], "nothing woke the tail yet");
  clock.fireAll();
  await eventually("the change found on the tick", () => entries.length === 2);
  assert.deepEqual(names(entries), ["before", "later"]);
  assert.equal(clock.timers.size, 1, "the next tick is set");
});

test("after the database restarts, a tail catches up without losing or repeating a change", async () => {
  await using server = await startPostgres();
  await using db = await cluster(server.url);
  const a = await db.node("a");
  const clock = new ManualClock();
  const { entries } = await db.tail({ clock });
  for (const user of ["r1", "r2", "r3"]) await a.record(seen(user));
  await eventually("the changes before the restart", () => entries.length === 3);
  await server.restart(async () => {
    await assert.rejects(a.record(seen("while-down")));
  });
  // The storage's connection may first try one that died with the server; a failed commit
  // appends nothing, so trying again is safe.
  for (const user of ["r4", "r5", "r6"]) {
    await eventually(`${user} committed`, () => a.record(seen(user)).then(() => true, () => false));
  }
  await eventually("the changes after the restart", () => {
    // The failsafe ticks, in case reading failed while the tail's pool reconnected.
    clock.fireAll();
    return entries.length >= 6;
  }, { timeoutMs: 30_000 });
  assert.deepEqual(names(entries), ["r1", "r2", "r3", "r4", "r5", "r6"]);
  assert.deepEqual(entries, await db.log());
});

test("pruneChanges deletes up to the seq given, and a tail from there reads the rest", async () => {
  await using db = await cluster();
  const a = await db.node("a");
  for (const user of ["p1", "p2", "p3", "p4", "p5"]) await a.record(seen(user));
  const log = await db.log();
  assert.equal(await pruneChanges(db.admin, log[2]!.seq), 3);
  assert.deepEqual(names(await db.log()), ["p4", "p5"]);
  assert.equal(await pruneChanges(db.admin, log[2]!.seq), 0);
  const { tail, entries } = await db.tail({ after: log[2]!.seq });
  await eventually("the tail at the end", () => tail.lastSeq === log[4]!.seq);
  assert.deepEqual(names(entries), ["p4", "p5"]);
});
