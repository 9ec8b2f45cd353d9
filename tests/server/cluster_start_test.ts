/**
 * Starting a cluster node at a consistent point, and pruning the change log behind the nodes, on a
 * real PostgreSQL: loadAtSeq (lib/server/store/postgres.ts) reads the tables and the seq they
 * reflect while another node commits, so that loading and then following the log from that seq
 * gives every change exactly once; the seq survives pruning; pruneUpTo
 * (lib/server/cluster/change_log.ts) waits for every registered node's reported progress
 * (NodeLease.reportProgress), and a lost node stops holding it back.
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import { MemoryBusHub } from "../../lib/server/cluster/bus.ts";
import {
  appendChanges,
  ChangeTail,
  type LogEntry,
  type LoggedChange,
  passedByAll,
  pruneChanges,
  pruneUpTo,
  readChanges,
  readLastSeq,
} from "../../lib/server/cluster/change_log.ts";
import { listNodes, NODE_LOCK_SPACE, NodeLease } from "../../lib/server/cluster/liveness.ts";
import { LivenessWatcher } from "../../lib/server/cluster/liveness_watcher.ts";
import type { Change, StoreContents } from "../../lib/server/store/journal.ts";
import {
  PG_MIGRATIONS,
  PG_VERSION_TABLE,
  PG_VERSION_TABLE_SQL,
} from "../../lib/server/store/pg_schema.ts";
import {
  type ContentsAtSeq,
  loadAtSeq,
  openPostgresStorage,
  type PostgresStorage,
} from "../../lib/server/store/postgres.ts";
import { FakeClock } from "../../lib/shared/clock.ts";
import { eventually } from "../../testing/eventually.ts";
import { postgresTest, sharedPostgres } from "../../testing/postgres.ts";

const test = postgresTest("Cluster start and pruning tests");

/** A fresh database with the layout; a pool on it; storages and leases, all closed at the end. */
async function cluster() {
  const url = await (await sharedPostgres()).createDatabase();
  const closers: Array<() => Promise<void>> = [];
  const admin = postgres(url, { max: 4, onnotice: () => {} });
  closers.push(() => admin.end({ timeout: 5 }));
  const node = async (id: string, options: { atSeq?: boolean } = {}) => {
    const storage = await openPostgresStorage(url, {
      clock: new FakeClock(),
      logChangesAs: id,
      connectTimeout: 2,
      ...options,
    });
    closers.push(() => storage.close());
    return storage;
  };
  // Lays the database out before anything else uses it.
  await node("setup");
  return {
    url,
    admin,
    /** Node `id`'s storage, appending what it commits to the log. */
    node,
    /** Registers node `id`. */
    async lease(id: string) {
      const lease = await NodeLease.acquire(url, { id, host: "10.0.0.1", port: 0 });
      closers.push(() => lease.release());
      return lease;
    },
    /** The whole log, as the table holds it. */
    log: () => readChanges(admin, 0, 100_000),
    async [Symbol.asyncDispose]() {
      for (const close of closers.reverse()) await close();
    },
  };
}

/** A change that names something to tell it apart by. */
function seen(user: string): Change {
  return { t: "seen", user, time: 1 };
}

/** What the tests compare: who has a last-seen time, and which mail is waiting. */
interface View {
  seen: string[];
  mail: number[];
}

/** Applies `changes` to `from` as a replica would, the parts a View shows. */
function fold(from: View, changes: readonly LogEntry[]): View {
  const seenUsers = new Set(from.seen);
  const mail = new Set(from.mail);
  for (const change of changes) {
    if (change.t === "seen") seenUsers.add(change.user);
    else if (change.t === "mail") mail.add(change.mail.id);
    else if (change.t === "delivered") { for (const id of change.ids) mail.delete(id); }
  }
  return { seen: [...seenUsers].sort(), mail: [...mail].sort((x, y) => x - y) };
}

function view(contents: StoreContents): View {
  return fold(
    { seen: contents.seen.map(({ user }) => user), mail: contents.mail.map((m) => m.id) },
    [],
  );
}

const EMPTY: View = { seen: [], mail: [] };

test("loading while another node commits: the contents hold exactly the changes up to the seq read", async () => {
  await using db = await cluster();
  const writer = await db.node("a");
  const ROUNDS = 40;
  let writing = true;
  /** Each round commits a handful of changes at once, some of them in one batch. */
  const write = async () => {
    try {
      for (let round = 0; round < ROUNDS; round++) {
        const base = round * 4;
        const changes: Change[] = [
          seen(`u${round}`),
          ...[1, 2, 3].map((k): Change => ({
            t: "mail",
            mail: {
              id: base + k,
              to: "yoda",
              from: "hans",
              line: `l${base + k}`,
              ref: "",
              time: 1,
            },
          })),
        ];
        if (round > 0) changes.push({ t: "delivered", ids: [base - 2, base - 1] });
        await Promise.all(changes.map((change) => writer.record(change)));
      }
    } finally {
      writing = false;
    }
  };
  const loads: ContentsAtSeq[] = [];
  const load = async () => {
    while (writing) loads.push(await loadAtSeq(db.admin));
  };
  await Promise.all([write(), load(), load()]);
  const log = await db.log();
  const last = log.at(-1)!.seq;
  const final = await loadAtSeq(db.admin);
  assert.equal(final.seq, last);
  assert.deepEqual(view(final.contents), fold(EMPTY, log.map(({ change }) => change)));
  const during = loads.filter(({ seq }) => seq > 0 && seq < last);
  assert.ok(during.length >= 3, `${during.length} loads came while the writer was committing`);
  for (const { contents, seq } of loads) {
    const upTo = log.filter((entry) => entry.seq <= seq).map(({ change }) => change);
    const after = log.filter((entry) => entry.seq > seq).map(({ change }) => change);
    assert.deepEqual(view(contents), fold(EMPTY, upTo), `the contents loaded at ${seq}`);
    assert.deepEqual(fold(view(contents), after), view(final.contents), `caught up from ${seq}`);
  }
  // A real tail from a seq read mid-way hands on exactly the rest.
  const middle = during[Math.floor(during.length / 2)]!;
  const entries: LoggedChange[] = [];
  const tail = new ChangeTail(db.admin, new MemoryBusHub().connect(), {
    after: middle.seq,
    onChange: (seq, node, change) => void entries.push({ seq, node, change }),
  });
  await tail.start();
  try {
    await eventually("the tail at the end of the log", () => tail.lastSeq === last);
  } finally {
    await tail.stop();
  }
  assert.deepEqual(entries, log.filter(({ seq }) => seq > middle.seq));
  assert.deepEqual(fold(view(middle.contents), entries.map((e) => e.change)), view(final.contents));
});

test("an append held open neither holds up loading nor shows in what it loads", async () => {
  await using db = await cluster();
  const writer = await db.node("a");
  await writer.record(seen("before"));
  const before = await readLastSeq(db.admin);
  let release = () => {};
  const gate = new Promise<void>((resolve) => release = resolve);
  let appended = () => {};
  const holding = new Promise<void>((resolve) => appended = resolve);
  const held = db.admin.begin(async (tx) => {
    await tx`insert into seen ("user", time) values ('held', 1)`;
    const seq = await appendChanges(tx, "b", [seen("held")]);
    appended();
    await gate;
    return seq;
  });
  held.catch(() => {});
  await holding;
  try {
    // Loading while the append holds CHANGE_LOG_LOCK, its rows written and its seq taken.
    const loaded = await loadAtSeq(db.admin);
    assert.equal(loaded.seq, before);
    assert.deepEqual(view(loaded.contents).seen, ["before"]);
  } finally {
    release();
  }
  const heldSeq = await held;
  assert.ok(heldSeq !== undefined && heldSeq > before);
  const after = await readChanges(db.admin, before, 10);
  assert.deepEqual(after.map(({ change }) => change), [seen("held")]);
  assert.deepEqual(view((await loadAtSeq(db.admin)).contents).seen, ["before", "held"]);
});

test("the seq is right after pruning emptied the log, and at start on a fresh database", async () => {
  await using db = await cluster();
  assert.equal((await loadAtSeq(db.admin)).seq, 0, "nothing logged yet");
  const writer = await db.node("a");
  for (const user of ["p1", "p2", "p3"]) await writer.record(seen(user));
  const last = (await db.log()).at(-1)!.seq;
  assert.equal(await pruneChanges(db.admin, last), 3);
  assert.deepEqual(await db.log(), []);
  const loaded = await loadAtSeq(db.admin);
  assert.equal(loaded.seq, last);
  assert.deepEqual(view(loaded.contents).seen, ["p1", "p2", "p3"]);
  const opened: PostgresStorage = await db.node("b", { atSeq: true });
  assert.equal(opened.seq, last);
  assert.deepEqual(opened.contents, loaded.contents);
  assert.equal((await db.node("c")).seq, undefined, "by default no seq");
  await writer.record(seen("p4"));
  const next = await readChanges(db.admin, opened.seq!, 10);
  assert.deepEqual(next.map(({ change }) => change), [seen("p4")]);
  assert.equal(next[0]!.seq, last + 1);
});

test("opening at a seq leaves other nodes' users online; opening by default takes them offline", async () => {
  await using db = await cluster();
  const writer = await db.node("a");
  await writer.record({ t: "online", user: "yoda", time: 5 });
  const online = async () => (await db.admin`select "user" from online`).map((row) => row.user);
  await db.node("b", { atSeq: true });
  assert.deepEqual(await online(), ["yoda"]);
  await db.node("c");
  assert.deepEqual(await online(), []);
});

test("a version 2 database gets where its log is and the nodes table, with last_seq", async () => {
  const url = await (await sharedPostgres()).createDatabase();
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  try {
    await sql.unsafe(PG_VERSION_TABLE_SQL);
    for (const [i, step] of PG_MIGRATIONS.slice(0, 2).entries()) {
      await sql.unsafe(step);
      await sql.unsafe(`INSERT INTO ${PG_VERSION_TABLE} (version) VALUES (${i + 1})`);
    }
    // The nodes table as liveness.ts made it before it was part of the layout.
    await sql`create table nodes (id text primary key, key integer generated always as identity
      unique, host text not null, port integer not null, started timestamptz not null)`;
    await sql`insert into changes (node, change) values ('a', '{"t":"seen","user":"x","time":1}'),
      ('a', '{"t":"seen","user":"y","time":1}')`;
    const storage = await openPostgresStorage(url, { clock: new FakeClock(), atSeq: true });
    await storage.close();
    assert.equal(storage.seq, 2);
    assert.deepEqual(await listNodes(sql), []);
    const [column] = await sql`select data_type from information_schema.columns
      where table_name = 'nodes' and column_name = 'last_seq'`;
    assert.equal(column?.data_type, "bigint");
  } finally {
    await sql.end();
  }
});

/** Records one change per user; returns their seqs, in order. */
async function appendSome(
  db: { log(): Promise<LoggedChange[]> },
  writer: PostgresStorage,
  n: number,
) {
  for (let i = 1; i <= n; i++) await writer.record(seen(`s${i}`));
  return (await db.log()).map(({ seq }) => seq);
}

test("pruning never removes what a registered node has not passed, nor before every node reported", async () => {
  await using db = await cluster();
  const writer = await db.node("a");
  const seqs = await appendSome(db, writer, 6);
  const [fast, slow, fresh] = [
    await db.lease("fast"),
    await db.lease("slow"),
    await db.lease("fresh"),
  ];
  assert.deepEqual(await pruneUpTo(db.admin), { upTo: undefined, deleted: 0 }, "nobody reported");
  assert.equal(await fast.reportProgress(seqs[4]!), true);
  assert.equal(await slow.reportProgress(seqs[1]!), true);
  assert.deepEqual(await pruneUpTo(db.admin), { upTo: undefined, deleted: 0 }, "fresh did not");
  assert.equal((await db.log()).length, 6);
  assert.equal(await fresh.reportProgress(seqs[5]!), true);
  assert.deepEqual(await pruneUpTo(db.admin), { upTo: seqs[1], deleted: 2 });
  assert.deepEqual((await db.log()).map(({ seq }) => seq), seqs.slice(2), "all after slow's");
  // Progress never goes back.
  assert.equal(await slow.reportProgress(seqs[0]!), true);
  assert.equal((await listNodes(db.admin)).find(({ id }) => id === "slow")?.lastSeq, seqs[1]);
  assert.deepEqual(await pruneUpTo(db.admin), { upTo: seqs[1], deleted: 0 });
  await slow.reportProgress(seqs[3]!);
  assert.deepEqual(await pruneUpTo(db.admin), { upTo: seqs[3], deleted: 2 });
  assert.deepEqual((await db.log()).map(({ seq }) => seq), seqs.slice(4));
});

test("a lost node's row removal lets pruning advance; a node that leaves cleanly too", async () => {
  await using db = await cluster();
  const writer = await db.node("a");
  const seqs = await appendSome(db, writer, 6);
  const [live, doomed, leaving] = [
    await db.lease("live"),
    await db.lease("doomed"),
    await db.lease("leaving"),
  ];
  await live.reportProgress(seqs[5]!);
  await doomed.reportProgress(seqs[0]!);
  await leaving.reportProgress(seqs[2]!);
  assert.deepEqual(await pruneUpTo(db.admin), { upTo: seqs[0], deleted: 1 });
  const killed = await db.admin`select pg_terminate_backend(pid, 5000) as done from pg_locks
    where locktype = 'advisory' and classid::bigint = ${NODE_LOCK_SPACE}
      and objid::bigint = ${doomed.key} and objsubid = 2`;
  assert.deepEqual(killed.map((row) => row.done), [true]);
  await eventually("the doomed node noticing", () => !doomed.held);
  assert.equal(await doomed.reportProgress(seqs[5]!), false, "a lost lease reports nothing");
  assert.equal(await passedByAll(db.admin), seqs[0], "its row holds pruning back until reported");
  const reported: string[] = [];
  const watcher = new LivenessWatcher(db.admin, { lease: live, onLost: (id) => reported.push(id) });
  assert.deepEqual(await watcher.tick(), ["doomed"]);
  assert.deepEqual(await pruneUpTo(db.admin), { upTo: seqs[2], deleted: 2 });
  await leaving.release();
  assert.deepEqual(await pruneUpTo(db.admin), { upTo: seqs[5], deleted: 3 });
  assert.deepEqual(await db.log(), []);
  assert.equal(await readLastSeq(db.admin), seqs[5]);
});
