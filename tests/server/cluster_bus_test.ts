/**
 * The cluster bus (lib/server/cluster/bus.ts): one contract run on the in-memory bus and on
 * PostgreSQL LISTEN/NOTIFY with two nodes, then what only PostgreSQL has — notifications sent in a
 * transaction, the limits PostgreSQL itself enforces, and listening again after the database
 * restarts or the listening connection is killed.
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import {
  type Bus,
  BusClosedError,
  BusLimitError,
  MAX_PAYLOAD_BYTES,
  MemoryBusHub,
} from "../../lib/server/cluster/bus.ts";
import { notifyInTransaction, PostgresBus } from "../../lib/server/cluster/postgres_bus.ts";
import { MemoryLogger } from "../../lib/shared/logger.ts";
import { eventually } from "../../testing/eventually.ts";
import { postgresTests, sharedPostgres, startPostgres } from "../../testing/postgres.ts";

const PG = postgresTests("PostgreSQL bus tests");

/** Two nodes' buses on one medium, closed when the test ends. */
interface TwoNodes extends AsyncDisposable {
  a: Bus;
  b: Bus;
}

const KINDS: {
  name: string;
  ignore: boolean;
  make(logger?: MemoryLogger): Promise<TwoNodes>;
}[] = [
  {
    name: "memory",
    ignore: false,
    make: (logger) => {
      const hub = new MemoryBusHub(logger ? { logger } : {});
      return Promise.resolve(pair(hub.connect(), hub.connect()));
    },
  },
  {
    name: "PostgreSQL",
    ignore: PG.ignore,
    make: async (logger) => {
      const url = await (await sharedPostgres()).createDatabase();
      const options = logger ? { logger } : {};
      return pair(PostgresBus.connect(url, options), PostgresBus.connect(url, options));
    },
  },
];

function pair(a: Bus, b: Bus): TwoNodes {
  return {
    a,
    b,
    async [Symbol.asyncDispose]() {
      await Promise.all([a.close(), b.close()]);
    },
  };
}

/** A subscriber that remembers what it heard. */
function listener() {
  const heard: string[] = [];
  return { heard, onMessage: (payload: string) => void heard.push(payload) };
}

for (const { name, ignore, make } of KINDS) {
  const test = (title: string, fn: () => Promise<void>) =>
    Deno.test({ name: `Bus on ${name}: ${title}`, ignore, fn });

  test("a message published on one node reaches the subscribers of both", async () => {
    await using nodes = await make();
    const onA = listener();
    const onB = listener();
    await nodes.a.subscribe("toom", onA.onMessage);
    await nodes.b.subscribe("toom", onB.onMessage);
    await nodes.a.publish("toom", "1");
    await eventually("1 on both nodes", () => onA.heard.length === 1 && onB.heard.length === 1);
    await nodes.b.publish("toom", "2");
    await eventually("2 on both nodes", () => onA.heard.length === 2 && onB.heard.length === 2);
    assert.deepEqual(onA.heard, ["1", "2"]);
    assert.deepEqual(onB.heard, ["1", "2"]);
  });

  test("a subscriber hears only its own channel", async () => {
    await using nodes = await make();
    const onToom = listener();
    const onOther = listener();
    await nodes.a.subscribe("toom", onToom.onMessage);
    await nodes.a.subscribe("other", onOther.onMessage);
    await nodes.b.publish("toom", "for toom");
    await eventually("the message on toom", () => onToom.heard.length === 1);
    assert.deepEqual(onOther.heard, []);
    await nodes.b.publish("other", "for other");
    await eventually("the message on other", () => onOther.heard.length === 1);
    assert.deepEqual(onToom.heard, ["for toom"]);
    assert.deepEqual(onOther.heard, ["for other"]);
  });

  test("messages from one publisher arrive in the order published", async () => {
    await using nodes = await make();
    const onB = listener();
    await nodes.b.subscribe("toom", onB.onMessage);
    const sent = Array.from({ length: 50 }, (_, i) => String(i));
    for (const payload of sent) await nodes.a.publish("toom", payload);
    await eventually("all 50 messages", () => onB.heard.length >= sent.length);
    assert.deepEqual(onB.heard, sent);
  });

  test("an unsubscribed handler hears nothing more; the channel's others still do", async () => {
    await using nodes = await make();
    const gone = listener();
    const stays = listener();
    const unsubscribe = await nodes.a.subscribe("toom", gone.onMessage);
    await nodes.a.subscribe("toom", stays.onMessage);
    await nodes.b.publish("toom", "before");
    await eventually("before, twice", () => gone.heard.length === 1 && stays.heard.length === 1);
    await unsubscribe();
    await unsubscribe();
    await nodes.b.publish("toom", "after");
    await eventually("after, on the remaining subscriber", () => stays.heard.length === 2);
    assert.deepEqual(gone.heard, ["before"]);
    assert.deepEqual(stays.heard, ["before", "after"]);
  });

  test("a channel left by all its subscribers can be subscribed to again", async () => {
    await using nodes = await make();
    const first = listener();
    await (await nodes.a.subscribe("toom", first.onMessage))();
    const second = listener();
    await nodes.a.subscribe("toom", second.onMessage);
    await nodes.b.publish("toom", "again");
    await eventually("the message to the new subscriber", () => second.heard.length === 1);
    assert.deepEqual(first.heard, []);
  });

  test("onSubscribed is called once when the subscription is in place", async () => {
    await using nodes = await make();
    let subscribed = 0;
    const heard = listener();
    await nodes.a.subscribe("toom", heard.onMessage, { onSubscribed: () => subscribed++ });
    assert.equal(subscribed, 1);
    await nodes.b.publish("toom", "x");
    await eventually("the message", () => heard.heard.length === 1);
    assert.equal(subscribed, 1);
  });

  test("a payload over 7999 bytes and a bad channel name are refused, and nothing is sent", async () => {
    await using nodes = await make();
    const onB = listener();
    await nodes.b.subscribe("toom", onB.onMessage);
    const largest = "x".repeat(MAX_PAYLOAD_BYTES);
    await nodes.a.publish("toom", largest);
    await assert.rejects(
      nodes.a.publish("toom", "x".repeat(8000)),
      (error: unknown) =>
        error instanceof BusLimitError &&
        error.message ===
          "Cannot publish on toom: the payload is 8000 bytes, over the limit of 7999",
    );
    // The limit counts UTF-8 bytes, not characters: 4000 characters of 2 bytes each.
    await assert.rejects(nodes.a.publish("toom", "é".repeat(4000)), /8000 bytes/);
    await assert.rejects(nodes.a.publish("", "x"), /empty channel name/);
    await assert.rejects(
      nodes.a.publish("c".repeat(64), "x"),
      (error: unknown) =>
        error instanceof BusLimitError && /64 bytes, over the limit of 63/.test(error.message),
    );
    await assert.rejects(nodes.a.subscribe("c".repeat(64), () => {}), BusLimitError);
    await nodes.a.publish("toom", "marker");
    await eventually("the marker", () => onB.heard.length >= 2);
    assert.deepEqual(onB.heard, [largest, "marker"]);
  });

  test("a closed bus refuses to publish and subscribe, and its subscribers hear no more", async () => {
    await using nodes = await make();
    const onA = listener();
    const onB = listener();
    await nodes.a.subscribe("toom", onA.onMessage);
    await nodes.b.subscribe("toom", onB.onMessage);
    await nodes.a.close();
    await assert.rejects(
      nodes.a.publish("toom", "x"),
      (error: unknown) =>
        error instanceof BusClosedError &&
        error.message === "Cannot publish on toom: the bus is closed",
    );
    await assert.rejects(nodes.a.subscribe("toom", () => {}), BusClosedError);
    await nodes.b.publish("toom", "after close");
    await eventually("the message on the open node", () => onB.heard.length === 1);
    assert.deepEqual(onA.heard, []);
  });

  test("a subscriber that throws is logged and the others still hear the message", async () => {
    const logger = new MemoryLogger();
    await using nodes = await make(logger);
    const onA = listener();
    await nodes.a.subscribe("toom", () => {
      throw new Error("boom");
    });
    await nodes.a.subscribe("toom", onA.onMessage);
    await nodes.b.publish("toom", "1");
    await nodes.b.publish("toom", "2");
    await eventually("both messages", () => onA.heard.length === 2);
    assert.deepEqual(logger.warnings, [
      "A subscriber of toom failed on a message: boom",
      "A subscriber of toom failed on a message: boom",
    ]);
  });
}

const pgTest = (title: string, fn: () => Promise<void>) =>
  Deno.test({ name: `Bus on PostgreSQL: ${title}`, ignore: PG.ignore, fn });

/** A pool on a fresh database of the shared server, with a bus on it; all closed at the end. */
async function freshDatabase() {
  const url = await (await sharedPostgres()).createDatabase();
  const sql = postgres(url, { max: 3, onnotice: () => {} });
  const bus = new PostgresBus(sql);
  const other = PostgresBus.connect(url);
  return {
    url,
    sql,
    bus,
    other,
    async [Symbol.asyncDispose]() {
      await other.close();
      await bus.close();
      await sql.end({ timeout: 5 });
    },
  };
}

pgTest(
  "a notification sent in a transaction arrives after its commit, with the change",
  async () => {
    await using db = await freshDatabase();
    await db.sql`create table posts (n integer)`;
    const heard = listener();
    const seen: Promise<number>[] = [];
    await db.other.subscribe("toom", (payload) => {
      heard.onMessage(payload);
      // What a node does on hearing of a change: read it. It must be there already.
      if (payload === "posted") {
        seen.push(db.sql`select count(*)::int as n from posts`.then(([row]) => row!.n as number));
      }
    });
    let commit!: () => void;
    const held = new Promise<void>((resolve) => commit = resolve);
    let notified!: () => void;
    const queued = new Promise<void>((resolve) => notified = resolve);
    const transaction = db.sql.begin(async (tx) => {
      await tx`insert into posts values (1)`;
      await notifyInTransaction(tx, "toom", "posted");
      notified();
      await held;
    });
    await queued;
    // Sent after the transaction's NOTIFY but committed first, so it must be heard first.
    await db.bus.publish("toom", "marker");
    await eventually("the marker", () => heard.heard.includes("marker"));
    assert.deepEqual(heard.heard, ["marker"], "nothing is heard before the commit");
    commit();
    await transaction;
    await eventually("the committed notification", () => heard.heard.length === 2);
    assert.deepEqual(heard.heard, ["marker", "posted"]);
    assert.deepEqual(await Promise.all(seen), [1]);
  },
);

pgTest("a notification sent in a transaction that rolls back is never delivered", async () => {
  await using db = await freshDatabase();
  const heard = listener();
  await db.other.subscribe("toom", heard.onMessage);
  await assert.rejects(
    db.sql.begin(async (tx) => {
      await notifyInTransaction(tx, "toom", "rolled back");
      throw new Error("the change failed");
    }),
    /the change failed/,
  );
  await db.bus.publish("toom", "marker");
  await eventually("the marker", () => heard.heard.includes("marker"));
  assert.deepEqual(heard.heard, ["marker"]);
});

pgTest("notifyInTransaction refuses an oversize payload before sending anything", async () => {
  await using db = await freshDatabase();
  const heard = listener();
  await db.other.subscribe("toom", heard.onMessage);
  await assert.rejects(
    db.sql.begin(async (tx) => {
      await notifyInTransaction(tx, "toom", "small");
      await notifyInTransaction(tx, "toom", "x".repeat(MAX_PAYLOAD_BYTES + 1));
    }),
    BusLimitError,
  );
  await db.bus.publish("toom", "marker");
  await eventually("the marker", () => heard.heard.includes("marker"));
  assert.deepEqual(heard.heard, ["marker"], "the failed transaction's notifications are dropped");
});

pgTest("the limits are PostgreSQL's own: it refuses 8000 bytes and a 64-byte channel", async () => {
  await using db = await freshDatabase();
  await db.sql`select pg_notify('toom', ${"x".repeat(MAX_PAYLOAD_BYTES)})`;
  await assert.rejects(
    db.sql`select pg_notify('toom', ${"x".repeat(MAX_PAYLOAD_BYTES + 1)})`,
    /payload string too long/,
  );
  await db.sql`select pg_notify(${"c".repeat(63)}, 'x')`;
  await assert.rejects(db.sql`select pg_notify(${"c".repeat(64)}, 'x')`, /channel name too long/);
});

pgTest("a listener whose connection is killed listens again and hears what follows", async () => {
  await using db = await freshDatabase();
  const heard = listener();
  const leaves = listener();
  let subscribed = 0;
  await db.bus.subscribe("toom", heard.onMessage, { onSubscribed: () => subscribed++ });
  const unsubscribe = await db.bus.subscribe("toom", leaves.onMessage);
  const killed = await db.sql`
    select pg_terminate_backend(pid, 5000) as done from pg_stat_activity
    where datname = current_database() and query ilike 'listen%'`;
  assert.deepEqual(killed.map((row) => row.done), [true], "one listening connection, killed");
  await eventually("listening again", () => subscribed >= 2);
  await db.other.publish("toom", "after the kill");
  await eventually("the message sent after the kill", () => heard.heard.length === 1);
  assert.deepEqual(leaves.heard, ["after the kill"]);
  // Leaving still works on the new connection.
  await unsubscribe();
  await db.other.publish("toom", "after leaving");
  await eventually("the message sent after leaving", () => heard.heard.length === 2);
  assert.deepEqual(heard.heard, ["after the kill", "after leaving"]);
  assert.deepEqual(leaves.heard, ["after the kill"]);
  assert.equal(subscribed, 2);
});

Deno.test({
  name: "Bus on PostgreSQL: after the database restarts, the listener is back and hears messages",
  ignore: PG.ignore,
  async fn() {
    await using server = await startPostgres();
    const a = PostgresBus.connect(server.url);
    const b = PostgresBus.connect(server.url);
    await using _buses = pair(a, b);
    const heard = listener();
    let subscribed = 0;
    await a.subscribe("toom", heard.onMessage, { onSubscribed: () => subscribed++ });
    await b.publish("toom", "before");
    await eventually("the message before the restart", () => heard.heard.length === 1);
    await server.restart();
    await eventually("the listener back after the restart", () => subscribed >= 2, {
      timeoutMs: 30_000,
    });
    // The publisher's pool may first try a connection that died with the server.
    await eventually(
      "a publish that goes through",
      () => b.publish("toom", "after").then(() => true, () => false),
    );
    await eventually("the message after the restart", () => heard.heard.includes("after"));
    assert.deepEqual(heard.heard.slice(0, 2), ["before", "after"]);
    assert.equal(subscribed, 2, "one restart, one more LISTEN");
  },
});
