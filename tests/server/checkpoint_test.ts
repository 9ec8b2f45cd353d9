/**
 * Checkpoints (lib/server/cluster/checkpoint.ts): contentsOf gives a store that holds and decides
 * as the original; on a real PostgreSQL, a node started with loadForReplica (from a checkpoint, or
 * from the whole log without one) and a Sequencer from the seq it gives ends the same as a node
 * that lived through a mix of proposals and ordinary Changes; pruning stops at the newest
 * checkpoint and waits for one once the log holds proposals.
 */
import assert from "node:assert/strict";
import {
  checkpointLimit,
  pruneChanges,
  pruneUpTo,
  readChanges,
  readLastSeq,
} from "../../lib/server/cluster/change_log.ts";
import {
  contentsOf,
  loadForReplica,
  loadLatest,
  writeCheckpoint,
} from "../../lib/server/cluster/checkpoint.ts";
import { NodeLease } from "../../lib/server/cluster/liveness.ts";

import { decide, type Proposal } from "../../lib/server/cluster/proposals.ts";

import {
  memoryJournal,
  memoryStorage,
  StorageError,
  type StoreContents,
} from "../../lib/server/store/journal.ts";
import { loadAtSeq, openPostgresStorage } from "../../lib/server/store/postgres.ts";
import { FakeClock } from "../../lib/shared/clock.ts";
import { eventually } from "../../testing/eventually.ts";
import { postgresTest } from "../../testing/postgres.ts";
import { type SequencedNode, sequencedNodes } from "../../testing/sequencer_fixture.ts";
import { type TestStore, testStore } from "../../testing/store_fixture.ts";

const CONFIG = { keepBoard: true, mailboxLimit: 5, mailboxPerSender: 3 };
/** 2024-01-02 03:04:05 UTC, a whole second. */
const T0 = Date.UTC(2024, 0, 2, 3, 4, 5);
const USERS = ["yoda", "hans", "leia", "vader"];

/** Proposals before the checkpoint: every kind, refusals among them, ids used up and dropped. */
const BEFORE: Proposal[] = [
  { t: "post", author: "yoda", text: "first", time: T0 },
  { t: "post", author: "hans", text: "second", time: T0 + 1_000 },
  { t: "post", author: "yoda", text: "third", time: T0 + 2_000 },
  { t: "edit", number: 1, time: T0, requester: "yoda", text: "first!", at: T0 + 3_000 },
  { t: "unpost", number: 2, time: T0 + 1_000, requester: "hans", at: T0 + 4_000 },
  { t: "unpost", number: 9, time: T0, requester: "yoda", at: T0 + 4_000 },
  { t: "mail", to: "vader", from: "hans", line: "hans: 1", ref: "r1", time: T0 },
  { t: "mail", to: "vader", from: "leia", line: "leia: 1", ref: "r2", time: T0 + 1 },
  { t: "take-mail", user: "vader", session: "s1" },
  // Not from yoda: vader blocked him (ordinary, round 0), and a blocked sender's mail is refused.
  { t: "mail", to: "vader", from: "obiwan", line: "obiwan: 1", ref: "r3", time: T0 + 2 },
  { t: "mail", to: "hans", from: "yoda", line: "yoda: hi", ref: "r4", time: T0 + 3 },
  { t: "block", by: "yoda", other: "hans" },
  { t: "block", by: "leia", other: "vader" },
  { t: "unblock", by: "yoda", other: "hans" },
  // The last post deleted: the board's next id is past every id it still has.
  { t: "post", author: "leia", text: "gone soon", time: T0 + 5_000 },
  { t: "unpost", number: 3, time: T0 + 5_000, requester: "leia", at: T0 + 6_000 },
  // Who is online, and vader's waiting message handed to his login.
  login("vader", "a", "v1", T0 + 10_000),
  login("yoda", "b", "y1", T0 + 11_000),
  { t: "fail-login", user: "hans", at: T0 + 12_000 },
];

function login(user: string, node: string, session: string, at: number): Proposal {
  return { t: "login", user, node, session, ip: "10.0.0.2", udpPort: 5000, at, duplicate: "deny" };
}

/** vader's handed messages going back into his queue: after the checkpoint. */
function putBack(node: TestStore): Proposal {
  const ids = node.store.online.handed("vader").map(({ id }) => id);
  assert.ok(ids.length > 0, "vader holds handed mail");
  return { t: "put-back-mail", user: "vader", ids };
}

/** Proposals after the checkpoint. */
const AFTER: Proposal[] = [
  { t: "post", author: "vader", text: "fourth", time: T0 + 7_000 },
  { t: "unpost", number: 1, time: T0 + 3_000, requester: "yoda", at: T0 + 8_000 },
  { t: "mail", to: "hans", from: "leia", line: "leia: hi", ref: "r5", time: T0 + 4 },
  { t: "take-mail", user: "hans", session: "s2" },
  { t: "mail", to: "yoda", from: "vader", line: "vader: 1", ref: "r6", time: T0 + 5 },
  { t: "block", by: "hans", other: "yoda" },
  { t: "edit", number: 1, time: T0 + 2_000, requester: "yoda", text: "third!", at: T0 + 9_000 },
  { t: "logout", user: "yoda", session: "y1", at: T0 + 13_000, reason: "out" },
  login("hans", "a", "h1", T0 + 14_000),
];

/** Ordinary Changes, made by a node's sections and (on PostgreSQL) committed to the log. */
async function ordinary(node: TestStore, round: number): Promise<void> {
  const { store } = node;
  for (let i = 0; i < 3; i++) await store.guard.recordFailure(round === 0 ? "vader" : "leia");
  await store.guard.recordFailure("yoda");
  store.lastSeen.left(USERS[round]!, T0 + round);
  await store.mailbox.put("leia", {
    from: "hans",
    line: `hans: ordinary ${round}`,
    ref: `o${round}`,
  });
  // Recorded last: the notes (lastSeen) go with it.
  await store.relations.block("vader", USERS[round]!);
}

/** What a reader sees of a node, files included. */
function observe(node: TestStore) {
  const { store } = node;
  return {
    board: store.board.since(-1),
    messagelog: node.file("messagelog.txt"),
    mail: USERS.map((user) => ({ user, ready: store.mailbox.ready(user) })),
    counts: USERS.map((user) => store.mailbox.count(user)),
    reach: USERS.flatMap((a) => USERS.map((b) => `${a}->${b}: ${store.relations.canReach(a, b)}`)),
    seen: [...store.lastSeen.times].toSorted(([x], [y]) => x.localeCompare(y)),
    locked: USERS.map((user) => store.guard.isLocked(user)),
    lockouts: store.guard.lockouts.toSorted((x, y) => x.user.localeCompare(y.user)),
    next: { mail: store.mailbox.nextId, post: store.board.nextId },
    online: store.online.entries,
    handed: USERS.map((user) => store.online.handed(user)),
  };
}

/** A started in-memory store built from `contents`. */
async function fromContents(contents: StoreContents): Promise<TestStore> {
  const node = testStore({ ...memoryJournal, contents }, { config: CONFIG });
  await node.store.start();
  return node;
}

Deno.test("contentsOf() round-trips through buildStore: the same state, and it decides the same", async () => {
  await using a = testStore(memoryStorage(), { config: CONFIG });
  await a.store.start();
  await ordinary(a, 0);
  for (const proposal of BEFORE) await decide(a.store, proposal).written;
  // The newest message taken: the mailbox's next id is past every id it still has, as the board's.
  await decide(a.store, { t: "take-mail", user: "hans", session: "s0" }).written;
  const contents = contentsOf(a.store);
  assert.ok(contents.next!.mail > Math.max(...contents.mail.map(({ id }) => id)) + 1);
  assert.ok(contents.next!.post > Math.max(...contents.board.map(({ id }) => id)) + 1);
  assert.deepEqual(JSON.parse(JSON.stringify(contents)), contents, "plain JSON");
  assert.ok(contents.mail.length > 0 && contents.lockouts.length > 0 && contents.blocks.length > 0);
  await using b = await fromContents(contents);
  assert.deepEqual(contentsOf(b.store), contents);
  assert.deepEqual(observe(b), observe(a));
  for (const proposal of [putBack(a), ...AFTER]) {
    assert.deepEqual(decide(b.store, proposal).outcome, decide(a.store, proposal).outcome);
  }
  await eventually(
    "both messagelogs written",
    () => b.file("messagelog.txt") === observe(a).messagelog,
  );
  assert.deepEqual(observe(b), observe(a));
});

const pgTest = postgresTest("Checkpoint tests");

type Node = SequencedNode;

/** A fresh database; node A on it (logging its ordinary Changes); replicas started later. */
async function cluster() {
  const nodes = await sequencedNodes();
  const { url, admin } = nodes;
  const clock = new FakeClock();
  const storage = await openPostgresStorage(url, {
    clock,
    atSeq: true,
    logChangesAs: "a",
    connectTimeout: 2,
  });
  const opened = testStore(storage, { clock, config: CONFIG });
  const a = await nodes.follow("a", opened, storage.seq ?? 0, true);
  /** Waits until `node` has applied the whole log. */
  const caughtUp = (node: Node) => nodes.caughtUp(node);
  return {
    url,
    admin,
    a,
    caughtUp,
    /** Proposes `proposals` on A in order, with ordinary Changes of `round` before them. */
    async run(proposals: Proposal[], round: number) {
      await ordinary(a, round);
      for (const proposal of proposals) await a.sequencer.propose(proposal);
      await caughtUp(a);
    },
    /** A new node C, started with loadForReplica and a Sequencer from the seq it gave. */
    async replica(id: string) {
      const start = await loadForReplica(admin);
      const c = await nodes.follow(id, await fromContents(start.contents), start.seq, true);
      await caughtUp(c);
      return { start, c };
    },
    async lease(id: string) {
      const lease = await NodeLease.acquire(url, { id, host: "10.0.0.1", port: 0 });
      nodes.defer(() => lease.release());
      return lease;
    },
    [Symbol.asyncDispose]: () => nodes[Symbol.asyncDispose](),
  };
}

/** Waits for both messagelog.txt files to settle, then asserts the nodes look the same. */
async function assertSame(c: TestStore, a: TestStore): Promise<void> {
  await eventually("messagelog.txt following the board", () => {
    const lines = (node: TestStore) => node.file("messagelog.txt").split("\n").length - 1;
    return lines(a) === a.store.board.size && lines(c) === c.store.board.size;
  });
  await eventually(
    "C's messagelog.txt as A's",
    () => c.file("messagelog.txt") === a.file("messagelog.txt"),
  );
  assert.deepEqual(observe(c), observe(a));
}

pgTest(
  "a new node starting from A's checkpoint and the log after it ends the same as A",
  async () => {
    await using db = await cluster();
    await db.run(BEFORE, 0);
    const seq = db.a.sequencer.lastSeq;
    assert.equal(await writeCheckpoint(db.admin, db.a.store, seq, "a"), true);
    assert.equal(await writeCheckpoint(db.admin, db.a.store, seq, "a"), false, "idempotent");
    assert.deepEqual(await loadLatest(db.admin), {
      contents: JSON.parse(JSON.stringify(contentsOf(db.a.store))),
      seq,
    });
    await db.run([putBack(db.a), ...AFTER], 1);
    assert.ok((await readLastSeq(db.admin)) > seq, "more came after the checkpoint");
    const { start, c } = await db.replica("c");
    assert.equal(start.from, "checkpoint");
    assert.equal(start.seq, seq);
    await assertSame(c, db.a);
    // Both go on deciding alike.
    const mail = await c.sequencer.propose({
      t: "mail",
      to: "yoda",
      from: "leia",
      line: "x",
      time: T0,
    });
    await db.caughtUp(db.a);
    assert.equal(mail.ok && mail.id, db.a.store.mailbox.ready("yoda").at(-1)?.id);
    await assertSame(c, db.a);
  },
);

pgTest("without a checkpoint a new node replays the whole log and ends the same as A", async () => {
  await using db = await cluster();
  await db.run(BEFORE, 0);
  await db.run(AFTER, 1);
  const { start, c } = await db.replica("c");
  assert.deepEqual([start.from, start.seq], ["log", 0]);
  await assertSame(c, db.a);
});

pgTest(
  "a database that never had proposals starts from the tables, as loadAtSeq reads them",
  async () => {
    await using db = await cluster();
    await ordinary(db.a, 0);
    await ordinary(db.a, 1);
    const start = await loadForReplica(db.admin);
    assert.deepEqual(start, { ...await loadAtSeq(db.admin), from: "tables" });
    assert.ok(start.seq > 0 && start.contents.mail.length === 2);
    assert.equal(await checkpointLimit(db.admin), undefined, "pruning as before");
  },
);

pgTest(
  "pruning stops at the newest checkpoint, and a node started after it ends the same",
  async () => {
    await using db = await cluster();
    const lease = await db.lease("a");
    await db.run(BEFORE, 0);
    await lease.reportProgress(db.a.sequencer.lastSeq);
    assert.deepEqual(await pruneUpTo(db.admin), { upTo: undefined, deleted: 0 }, "no checkpoint");
    const seq = db.a.sequencer.lastSeq;
    await writeCheckpoint(db.admin, db.a.store, seq, "a");
    await db.run([putBack(db.a), ...AFTER], 1);
    const last = db.a.sequencer.lastSeq;
    await lease.reportProgress(last);
    const before = (await readChanges(db.admin, 0, 100_000)).filter((entry) => entry.seq <= seq);
    assert.deepEqual(await pruneUpTo(db.admin), { upTo: seq, deleted: before.length });
    const left = await readChanges(db.admin, 0, 100_000);
    assert.ok(left.length > 0 && left[0]!.seq > seq && left.at(-1)!.seq === last);
    await db.lease("c");
    const { start, c } = await db.replica("c");
    assert.deepEqual([start.from, start.seq], ["checkpoint", seq]);
    await assertSame(c, db.a);
  },
);

pgTest(
  "writeCheckpoint keeps the newest few and refuses a seq the log has not reached",
  async () => {
    await using db = await cluster();
    await db.run(BEFORE.slice(0, 5), 0);
    const last = db.a.sequencer.lastSeq;
    for (let seq = last - 4; seq <= last; seq++) {
      await writeCheckpoint(
        db.admin,
        db.a.store,
        seq,
        "a",
      );
    }
    const kept = await db.admin`select seq from snapshots order by seq`;
    assert.deepEqual(kept.map((row) => Number(row.seq)), [last - 2, last - 1, last]);
    assert.equal((await loadLatest(db.admin))?.seq, last);
    await assert.rejects(writeCheckpoint(db.admin, db.a.store, last + 1, "a"), RangeError);
    assert.equal(await checkpointLimit(db.admin), last);
  },
);

pgTest("a log with proposals pruned with no checkpoint left refuses to start a node", async () => {
  await using db = await cluster();
  await db.run(BEFORE.slice(0, 3), 0);
  assert.equal(await checkpointLimit(db.admin), 0, "proposals and no checkpoint: nothing");
  assert.ok(await pruneChanges(db.admin, 1) > 0);
  await assert.rejects(loadForReplica(db.admin), StorageError);
});
