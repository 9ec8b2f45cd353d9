/**
 * The cluster's upkeep of its change log (lib/server/cluster/upkeep.ts), with chat servers
 * in-process on a real PostgreSQL: running nodes report their progress, write checkpoints and
 * prune the log behind them; a node that starts later starts from the newest checkpoint and agrees
 * with the others (board, files, mail, blocks, lockouts); a registered node that stopped reporting
 * holds pruning back; a node restarted under its old id replays what that id logged after the
 * checkpoint; and a node starting while users are online elsewhere lists them in userlog.txt at
 * once (lib/server/store/store.ts, start).
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import { appendChanges, readLastSeq } from "../../lib/server/cluster/change_log.ts";
import { contentsOf } from "../../lib/server/cluster/checkpoint.ts";
import { createNodesTable, NodeLease } from "../../lib/server/cluster/liveness.ts";
import { Upkeep, type UpkeepOptions } from "../../lib/server/cluster/upkeep.ts";
import { memoryStorage } from "../../lib/server/store/journal.ts";
import { openPostgresStorage } from "../../lib/server/store/postgres.ts";
import { FakeClock } from "../../lib/shared/clock.ts";
import { MemoryLogger } from "../../lib/shared/logger.ts";
import { BLOCKED_MESSAGE } from "../../lib/server/relations.ts";
import {
  type ClusterTestServer,
  ManualTickClock,
  startClusterServer,
} from "../../testing/cluster_fixture.ts";
import { eventually } from "../../testing/eventually.ts";
import { postgresTest, sharedPostgres } from "../../testing/postgres.ts";
import { loggedIn, type TestClient } from "../../testing/server_fixture.ts";
import { testStore } from "../../testing/store_fixture.ts";

const pgTest = postgresTest("cluster upkeep tests");

/** Small values, so that a handful of entries makes a checkpoint due. */
const UPKEEP = { intervalMs: 1_000, checkpointEntries: 5, checkpointAfterMs: 3_600_000 };

/** A fresh database, a pool on it, and nodes started on it with `upkeep`, all closed at the end. */
async function cluster(upkeep: UpkeepOptions = UPKEEP) {
  const url = await (await sharedPostgres()).createDatabase();
  const admin = postgres(url, { max: 2, onnotice: () => {} });
  const nodes: ClusterTestServer[] = [];
  const closers: Array<() => Promise<void>> = [];
  return {
    url,
    admin,
    nodes,
    /** Starts node `id` (closed at the end unless closed before). */
    async start(id: string): Promise<ClusterTestServer> {
      const node = await startClusterServer(url, id, { commandBurst: 100 }, { upkeep });
      nodes.push(node);
      return node;
    },
    /** Registers node `id` by hand, as a node that does nothing else (released at the end). */
    async lease(id: string): Promise<NodeLease> {
      const lease = await NodeLease.acquire(url, { id, host: "10.0.0.9", port: 0 });
      closers.push(() => lease.release());
      return lease;
    },
    /** Moves every running node's upkeep on by one interval until `check` holds. */
    ticked<T>(what: string, check: () => Promise<T>): Promise<NonNullable<T>> {
      return eventually(what, () => {
        for (const node of nodes) node.ticks.advance(upkeep.intervalMs ?? UPKEEP.intervalMs);
        return check();
      });
    },
    async [Symbol.asyncDispose]() {
      for (const node of nodes.reverse()) await node.close();
      for (const close of closers.reverse()) await close();
      await admin.end({ timeout: 5 });
    },
  };
}

/** Where the log and its checkpoints are. */
interface LogState {
  /** The newest checkpoint's seq (undefined: none). */
  newest: number | undefined;
  /** Every checkpoint's seq, oldest first. */
  checkpoints: number[];
  /** The first seq left in the log (undefined: it is empty). */
  first: number | undefined;
  last: number;
  pruned: number;
  /** Each registered node's reported seq. */
  reported: Record<string, number | null>;
}

async function logState(sql: postgres.Sql): Promise<LogState> {
  const snapshots = await sql`select seq from snapshots order by seq`;
  const [log] = await sql`select (select min(seq) from changes) as first,
    last_seq, pruned_up_to from change_log_state`;
  const nodes = await sql`select id, last_seq from nodes`;
  const checkpoints = snapshots.map((row) => Number(row.seq));
  return {
    newest: checkpoints.at(-1),
    checkpoints,
    first: log?.first === null ? undefined : Number(log?.first),
    last: Number(log?.last_seq),
    pruned: Number(log?.pruned_up_to),
    reported: Object.fromEntries(
      nodes.map((row) => [row.id, row.last_seq === null ? null : Number(row.last_seq)]),
    ),
  };
}

/** The state is steady: the newest checkpoint is at least `atLeast` and the log pruned up to it. */
function prunedToNewest(state: LogState, atLeast: number): boolean {
  return state.newest !== undefined && state.newest >= atLeast && state.pruned === state.newest &&
    (state.first === undefined || state.first > state.newest);
}

async function posted(client: TestClient, text: string): Promise<void> {
  const reply = await client.cmd(`MSG ${text}`);
  assert.equal(reply.ok, true, reply.lines.join());
}

/** Waits until every node's replica and files are the same as the first's. */
async function allAgree(nodes: readonly ClusterTestServer[]): Promise<void> {
  const [first, ...others] = nodes;
  await eventually("every node's state and files the same", () =>
    others.every((node) => {
      try {
        assert.deepEqual(
          contentsOf(node.server.state.store),
          contentsOf(first!.server.state.store),
        );
      } catch {
        return false;
      }
      return node.file("messagelog.txt") === first!.file("messagelog.txt") &&
        node.file("userlog.txt") === first!.file("userlog.txt");
    }));
}

pgTest(
  "after enough entries a checkpoint is written and the log pruned up to it while both nodes run",
  async () => {
    await using db = await cluster();
    const one = await db.start("node-1");
    const two = await db.start("node-2");
    const yoda = await loggedIn(one, "yoda", "jedi");
    for (let i = 1; i <= 7; i++) await posted(yoda, `post ${i}`);
    const state = await db.ticked(
      "a checkpoint of 5 entries or more, and the log pruned up to it",
      async () => {
        const state = await logState(db.admin);
        return prunedToNewest(state, UPKEEP.checkpointEntries) ? state : undefined;
      },
    );
    // Both nodes passed it: both reported, and pruning took the lower of the two.
    for (const id of ["node-1", "node-2"]) assert.ok(state.reported[id]! >= state.newest!);
    assert.ok(state.checkpoints.length <= 3, "at most 3 kept");

    // Both go on working on the pruned log, and agree.
    const hans = await loggedIn(two, "hans", "falcon");
    await posted(hans, "after pruning");
    await allAgree([one, two]);
    assert.match(one.file("messagelog.txt"), /^8; .*; hans; after pruning; no$/m);
  },
);

pgTest(
  "a checkpoint is due at first, after enough entries, or after a while with any",
  async () => {
    await using db = await cluster();
    await createNodesTable(db.admin);
    await using opened = testStore(memoryStorage());
    const clock = new ManualTickClock();
    let applied = 0;
    const upkeep = new Upkeep({
      sql: db.admin,
      node: "u",
      store: opened.store,
      appliedSeq: () => applied,
      report: () => Promise.resolve(true),
      clock,
      logger: new MemoryLogger(),
    }, { checkpointEntries: 3, checkpointAfterMs: 4_000 });
    /** Appends `n` entries, applied at once. */
    const grow = async (n: number) => {
      const seen = { t: "seen", user: "yoda", time: 1 } as const;
      applied = (await db.admin.begin((tx) => appendChanges(tx, "x", Array(n).fill(seen))))!;
    };
    assert.equal((await upkeep.tick())?.checkpoint, undefined, "an empty log needs none");
    await grow(1);
    assert.equal((await upkeep.tick())?.checkpoint, 1, "the first is due at once");
    await grow(2);
    clock.advance(3_999);
    assert.equal((await upkeep.tick())?.checkpoint, undefined, "2 entries, under 4 s");
    clock.advance(1);
    assert.equal((await upkeep.tick())?.checkpoint, 3, "2 entries, 4 s");
    await grow(3);
    assert.equal((await upkeep.tick())?.checkpoint, 6, "3 entries at once");
    clock.advance(60_000);
    assert.equal((await upkeep.tick())?.checkpoint, undefined, "no entry since");
    assert.deepEqual((await logState(db.admin)).checkpoints, [1, 3, 6]);
  },
);

pgTest(
  "a node started after pruning starts from the checkpoint and agrees with the others",
  async () => {
    await using db = await cluster();
    const one = await db.start("node-1");
    const two = await db.start("node-2");
    const yoda = await loggedIn(one, "yoda", "jedi", 8001);
    const hans = await loggedIn(two, "hans", "falcon", 8002);
    for (let i = 1; i <= 3; i++) await posted(yoda, `from yoda ${i}`);
    await posted(hans, "from hans");
    const first = one.file("messagelog.txt").split("; ")[1]!;
    assert.equal((await yoda.cmd(`DLT #1 ${first}`)).ok, true);
    assert.deepEqual((await yoda.cmd("message vader come back")).lines, [
      "vader is offline; the message will be delivered when they log in.",
    ]);
    assert.deepEqual((await hans.cmd("block yoda")).lines, ["yoda is blocked"]);
    // obiwan locked out by failures on both nodes; vader with one failure counted.
    for (const node of [one, two, one]) await node.connect().login("obiwan", "wrong");
    assert.equal((await two.connect().login("vader", "wrong")).code, "bad-password");

    const state = await db.ticked("the log pruned up to a checkpoint near its end", async () => {
      const state = await logState(db.admin);
      return prunedToNewest(state, state.last - UPKEEP.checkpointEntries + 1) ? state : undefined;
    });
    assert.ok(state.pruned > 0);
    // Something in the log after the checkpoint, for the new node to replay.
    await posted(yoda, "after the checkpoint");

    const three = await db.start("node-3");
    assert.deepEqual(three.cluster.start, { seq: state.newest, from: "checkpoint" });
    await allAgree([one, two, three]);
    assert.match(three.file("userlog.txt"), /^1; .*; yoda; .*; 8001\n2; .*; hans; .*; 8002\n$/);
    assert.match(three.file("messagelog.txt"), /^4; .*; yoda; after the checkpoint; no$/m);
    assert.equal(three.file("messagelog.txt").split("\n").length - 1, 4);

    // What the checkpoint carried holds on the new node: the lockout, the mail, the block.
    assert.equal((await three.connect().login("obiwan", "hellothere")).code, "blocked");
    const vader = await loggedIn(three, "vader", "sithlord");
    await vader.waitFor("come back");
    const refused = await yoda.cmd("message hans still there?");
    assert.deepEqual([refused.ok, refused.lines], [false, [BLOCKED_MESSAGE]]);
    await allAgree([one, two, three]);
  },
);

pgTest("a registered node that stopped reporting holds pruning back until it goes", async () => {
  await using db = await cluster();
  const one = await db.start("node-1");
  await db.start("node-2");
  const yoda = await loggedIn(one, "yoda", "jedi");
  await posted(yoda, "before the idle node");
  // A node that registered, reported once, and was heard of no more (its lock still held).
  const idle = await db.lease("idle");
  const at = await readLastSeq(db.admin);
  assert.equal(await idle.reportProgress(at), true);
  for (let i = 1; i <= 12; i++) await posted(yoda, `post ${i}`);

  const held = await db.ticked("a checkpoint past the idle node, both others past it", async () => {
    const state = await logState(db.admin);
    const passed = (id: string) => (state.reported[id] ?? 0) >= state.newest!;
    return state.newest !== undefined && state.newest >= at + 10 && passed("node-1") &&
        passed("node-2") && state.pruned === at
      ? state
      : undefined;
  });
  assert.equal(held.first, at + 1, "nothing the idle node has not passed is gone");

  await idle.release();
  await db.ticked("the log pruned up to the newest checkpoint", async () => {
    return prunedToNewest(await logState(db.admin), at + 10);
  });
});

pgTest(
  "a node restarted under its old id after a checkpoint replays what that id logged after it",
  async () => {
    await using db = await cluster();
    const one = await db.start("node-1");
    const two = await db.start("node-2");
    const yoda = await loggedIn(one, "yoda", "jedi");
    const hans = await loggedIn(two, "hans", "falcon");
    for (let i = 1; i <= 5; i++) await posted(yoda, `before ${i}`);
    const state = await db.ticked("a checkpoint", async () => {
      const state = await logState(db.admin);
      return prunedToNewest(state, UPKEEP.checkpointEntries) ? state : undefined;
    });
    // After the checkpoint: node 1's own proposals, a Change logged under its id (as a storage
    // logging its Changes, logChangesAs, would have), and node 2's.
    await posted(yoda, "after, from node 1");
    assert.deepEqual((await yoda.cmd("message vader from node 1")).lines, [
      "vader is offline; the message will be delivered when they log in.",
    ]);
    await db.admin.begin((tx) =>
      appendChanges(tx, "node-1", [{ t: "block", by: "obiwan", other: "vader" }])
    );
    await posted(hans, "after, from node 2");
    assert.deepEqual((await yoda.cmd("OUT")).lines, ["Bye, yoda!"]);
    await one.close();

    const again = await db.start("node-1");
    assert.deepEqual(again.cluster.start, { seq: state.newest, from: "checkpoint" });
    await allAgree([two, again]);
    assert.deepEqual(again.server.state.store.relations.blocks, [{ by: "obiwan", other: "vader" }]);
    assert.match(
      again.file("messagelog.txt"),
      /^6; .*; yoda; after, from node 1; no\n7; .*; hans; after, from node 2; no\n$/m,
    );
    const vader = await loggedIn(again, "vader", "sithlord");
    await vader.waitFor("from node 1");
  },
);

pgTest(
  "a node starting from a checkpoint while users are online elsewhere lists them in userlog.txt at once",
  async () => {
    await using db = await cluster();
    const one = await db.start("node-1");
    await loggedIn(one, "yoda", "jedi", 8001);
    await loggedIn(one, "vader", "sithlord", 8003);
    await posted(await loggedIn(one, "hans", "falcon", 8002), "on the board");
    const last = await readLastSeq(db.admin);
    // The first checkpoint is due as soon as the log has entries: it covers all of them.
    await db.ticked("a checkpoint at the end of the log", async () => {
      return (await logState(db.admin)).newest === last;
    });

    const two = await db.start("node-2");
    assert.deepEqual(two.cluster.start, { seq: last, from: "checkpoint" });
    // Nothing more came through the log: the files are what the node started with.
    assert.match(
      two.file("userlog.txt"),
      /^1; .*; yoda; .*; 8001\n2; .*; vader; .*; 8003\n3; .*; hans; .*; 8002\n$/,
    );
    assert.equal(two.file("userlog.txt"), one.file("userlog.txt"));
    assert.equal(two.file("messagelog.txt"), one.file("messagelog.txt"));
    assert.match(two.file("messagelog.txt"), /^1; .*; hans; on the board; no\n$/);
  },
);

pgTest(
  "a node that loaded the tables checkpoints them as it starts, and the next node starts there",
  async () => {
    await using db = await cluster();
    // A database written by a storage that logs what it commits: the tables hold a block.
    const storage = await openPostgresStorage(db.url, {
      clock: new FakeClock(),
      logChangesAs: "writer",
      connectTimeout: 2,
    });
    try {
      await storage.record({ t: "block", by: "yoda", other: "vader" });
    } finally {
      await storage.close();
    }
    const last = await readLastSeq(db.admin);
    assert.ok(last > 0);

    const one = await db.start("node-1");
    assert.deepEqual(one.cluster.start, { seq: last, from: "tables" });
    // No tick asked for: the start's own.
    await eventually("a checkpoint of the tables", async () => {
      return (await logState(db.admin)).newest === last;
    });
    const two = await db.start("node-2");
    assert.deepEqual(two.cluster.start, { seq: last, from: "checkpoint" });
    assert.deepEqual(two.server.state.store.relations.blocks, [{ by: "yoda", other: "vader" }]);
  },
);
