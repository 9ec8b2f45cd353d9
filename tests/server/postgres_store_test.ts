/**
 * The store on PostgreSQL (lib/server/store/postgres.ts): what a Store on it keeps across a
 * restart (close and reopen the same database), group commits, layouts and servers it refuses,
 * several servers opening one fresh database at once, and a database server that restarts. The
 * rules every storage follows are in store_contract_test.ts. Each test gets a fresh database on
 * the file's throwaway PostgreSQL server.
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import { StorageError } from "../../lib/server/store/journal.ts";
import { PG_SCHEMA_VERSION, PG_VERSION_TABLE } from "../../lib/server/store/pg_schema.ts";
import { openPostgresStorage } from "../../lib/server/store/postgres.ts";
import { TABLES } from "../../lib/server/store/schema.ts";
import { FakeClock } from "../../lib/shared/clock.ts";
import { MemoryLogger } from "../../lib/shared/logger.ts";
import { formatTimestamp } from "../../lib/shared/timestamp.ts";
import { postgresTests, sharedPostgres, startPostgres } from "../../testing/postgres.ts";
import { CREDENTIALS } from "../../testing/server_fixture.ts";
import { storeDatabase } from "../../testing/store_fixture.ts";

const { ignore } = postgresTests("PostgreSQL store tests");

function test(name: string, fn: () => Promise<void>): void {
  Deno.test({ name, ignore, fn });
}

/** Runs `query` on the database at `url` with its own connection, and returns the rows. */
async function query(url: string, text: string): Promise<postgres.Row[]> {
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  try {
    return [...await sql.unsafe(text)];
  } finally {
    await sql.end();
  }
}

/** Lets a commit scheduled for when the event loop is idle start. */
function idle(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

test("offline messages not yet delivered are back after a restart, in order, once", async () => {
  await using db = await storeDatabase();
  const clock = new FakeClock();
  const first = await db.open({ clock });
  const { mailbox } = first.store;
  await mailbox.put("yoda", { from: "hans", line: "delivered 1" });
  await mailbox.put("yoda", { from: "hans", line: "delivered 2" });
  await mailbox.delivered(mailbox.take("yoda"));
  await mailbox.put("yoda", { from: "hans", line: "c", ref: "ref-c" });
  await mailbox.put("obiwan", { from: "yoda", line: "for obiwan" });
  await mailbox.put("yoda", { from: "vader", line: "d" });
  // Taken by a connection that died before it had them: never delivered.
  const lost = mailbox.take("yoda");
  await mailbox.put("yoda", { from: "hans", line: "e" });
  await first.close();

  const second = await db.open({ clock });
  assert.deepEqual(second.storage.contents.mail.map((m) => [m.to, m.line]), [
    ["yoda", "c"],
    ["obiwan", "for obiwan"],
    ["yoda", "d"],
    ["yoda", "e"],
  ]);
  const back = second.store.mailbox.take("yoda");
  assert.deepEqual(back.map((m) => m.line), ["c", "d", "e"]);
  assert.deepEqual(back.slice(0, 2), lost, "the same ids, senders and refs");
  await second.store.mailbox.put("yoda", { from: "hans", line: "f" });
  await second.store.mailbox.delivered(back);
  await second.close();

  const third = await db.open({ clock });
  assert.deepEqual(third.store.mailbox.take("yoda").map((m) => m.line), ["f"]);
  assert.equal(third.store.mailbox.countFrom("obiwan", "yoda"), 1);
});

test("blocks, failure counts, lockouts and last-seen times survive a restart", async () => {
  await using db = await storeDatabase();
  const clock = new FakeClock();
  const first = await db.open({ clock });
  const { relations, guard, lastSeen } = first.store;
  await relations.block("yoda", "hans");
  await relations.block("obiwan", "vader");
  await relations.unblock("obiwan", "vader");
  for (let i = 0; i < 3; i++) await guard.recordFailure("vader");
  await guard.recordFailure("hans");
  await guard.recordFailure("hans");
  await guard.recordFailure("obiwan");
  await guard.recordSuccess("obiwan");
  lastSeen.left("leia", clock.now() - 60_000);
  await first.close();

  clock.advance(5_000);
  const after = (await db.open({ clock })).store;
  assert.equal(after.relations.hasBlocked("yoda", "hans"), true);
  assert.equal(after.relations.canReach("hans", "yoda"), false);
  assert.equal(after.relations.hasBlocked("obiwan", "vader"), false);
  assert.equal(after.guard.isLocked("vader"), true, "still locked on the same clock");
  assert.equal(after.guard.isLocked("hans"), false);
  assert.equal(await after.guard.recordFailure("hans"), "locked", "two failures were kept");
  assert.equal(await after.guard.recordFailure("obiwan"), "try-again", "a success forgave");
  assert.equal(after.lastSeen.times.get("leia"), clock.now() - 65_000);
  clock.advance(5_000);
  assert.equal(after.guard.isLocked("vader"), false, "the lockout ends when it was due");
});

test("users a killed run had online are last seen when it was last alive", async () => {
  await using db = await storeDatabase();
  const clock = new FakeClock();
  const start = clock.now();
  const first = await db.open({ clock });
  first.store.lastSeen.arrived("yoda", start);
  clock.advance(5_000);
  await first.store.relations.block("vader", "obiwan"); // the last commit: alive at start + 5 s
  await first.close(); // as if killed: yoda never left

  clock.advance(60_000);
  const second = await db.open({ clock });
  assert.equal(second.store.lastSeen.times.get("yoda"), start + 5_000);
  assert.deepEqual(await query(db.url, "SELECT * FROM online"), []);
});

test("a kept board survives a restart and start() writes it renumbered", async () => {
  await using db = await storeDatabase();
  const clock = new FakeClock();
  const config = { keepBoard: true };
  const first = await db.open({ clock, config });
  await first.store.start();
  const one = await first.store.board.post("yoda", "one");
  const two = await first.store.board.post("hans", "two");
  clock.advance(3_000);
  await first.store.board.post("vader", "three");
  const edited = await first.store.board.edit(3, clock.now(), "vader", "three, edited");
  await edited.committed;
  await first.store.board.remove(2, two.time, "hans");
  await first.close();

  const second = await db.open({ clock, config });
  await second.store.start();
  assert.equal(
    second.file("messagelog.txt"),
    `1; ${formatTimestamp(one.time)}; yoda; one; no\n` +
      `2; ${formatTimestamp(edited.time)}; vader; three, edited; yes\n`,
  );
  assert.equal((await second.store.board.post("obiwan", "four")).number, 3);
});

test("start() writes to credentials.txt an account change a killed run never wrote", async () => {
  await using db = await storeDatabase();
  const first = await db.open();
  await first.storage.record({ t: "account", user: "luke", secret: "skywalker" });
  await first.storage.record({ t: "account", user: "yoda", secret: "newjedi" });
  await first.close();

  const second = await db.open();
  await second.store.start();
  assert.equal(
    second.file("credentials.txt"),
    CREDENTIALS.replace("yoda jedi", "yoda newjedi") + "luke skywalker\n",
  );
  await second.close();
  assert.deepEqual((await db.open()).storage.contents.accounts, [], "no longer pending");
});

test("what is recorded while a commit is in flight goes into the next, in one", async () => {
  await using db = await storeDatabase();
  const { storage } = await db.open();
  const mail = (id: number) => ({
    id,
    to: "yoda",
    from: "hans",
    line: `m${id}`,
    ref: "r",
    time: 0,
  });
  const first = [];
  for (let id = 1; id <= 100; id++) first.push(storage.record({ t: "mail", mail: mail(id) }));
  storage.note({ t: "block", by: "yoda", other: "hans" });
  await idle();
  const second = [];
  for (let id = 101; id <= 150; id++) second.push(storage.record({ t: "mail", mail: mail(id) }));
  second.push(storage.record({ t: "delivered", ids: [1, 2] }));
  await Promise.all([...first, ...second]);

  // A row's xmin is the transaction that wrote it.
  const rows = await query(db.url, "SELECT id, xmin::text AS tx FROM mail ORDER BY id");
  assert.equal(rows.length, 148);
  const tx = (from: number, to: number) =>
    new Set(rows.filter((row) => row.id >= from && row.id <= to).map((row) => row.tx));
  assert.equal(tx(3, 100).size, 1, "the first turn's changes are one transaction");
  assert.equal(tx(101, 150).size, 1, "those recorded meanwhile are the next one");
  assert.notDeepEqual(tx(3, 100), tx(101, 150));
  const [block] = await query(db.url, "SELECT xmin::text AS tx FROM blocks");
  assert.deepEqual(new Set([block!.tx]), tx(3, 100), "a noted change rides along");
});

test("a noted change is committed within a tenth of a second on its own", async () => {
  await using db = await storeDatabase();
  const { storage } = await db.open();
  storage.note({ t: "block", by: "yoda", other: "hans" });
  await new Promise((resolve) => setTimeout(resolve, 300));
  assert.equal((await query(db.url, "SELECT * FROM blocks")).length, 1);
});

test("a commit that fails rejects every change in it and keeps none of them", async () => {
  await using db = await storeDatabase();
  const logger = new MemoryLogger();
  const storage = await openPostgresStorage(db.url, { clock: new FakeClock(), logger });
  try {
    const mail = { id: 7, to: "yoda", from: "hans", line: "once", ref: "r", time: 0 };
    await storage.record({ t: "mail", mail });
    const block = storage.record({ t: "block", by: "yoda", other: "vader" });
    const duplicate = storage.record({ t: "mail", mail: { ...mail, line: "twice" } });
    await assert.rejects(block, /duplicate key value/);
    await assert.rejects(duplicate, /duplicate key value/);
    assert.equal(logger.warnings.length, 1);
    assert.match(logger.warnings[0]!, /^Could not write postgres:\/\/.*duplicate key value/);
    // The store carries on: the next commit goes through.
    await storage.record({ t: "block", by: "obiwan", other: "vader" });
  } finally {
    await storage.close();
  }
  assert.deepEqual(await query(db.url, "SELECT by_user, other FROM blocks"), [
    { by_user: "obiwan", other: "vader" },
  ]);
  assert.deepEqual((await query(db.url, "SELECT line FROM mail")).map((r) => r.line), ["once"]);
});

test("close() commits what is pending; a change recorded after it is rejected", async () => {
  await using db = await storeDatabase();
  const first = await db.open();
  const pending = first.storage.record({ t: "block", by: "yoda", other: "hans" });
  await first.close();
  await pending;
  await assert.rejects(
    first.storage.record({ t: "block", by: "yoda", other: "vader" }),
    (error: unknown) => error instanceof StorageError && /is closed/.test(error.message),
  );
  assert.deepEqual((await db.open()).storage.contents.blocks, [{ by: "yoda", other: "hans" }]);
});

test("three servers opening a fresh database at once all start; it is laid out once", async () => {
  const url = await (await sharedPostgres()).createDatabase();
  const opened = await Promise.allSettled(
    [1, 2, 3].map(() => openPostgresStorage(url, { clock: new FakeClock() })),
  );
  for (const result of opened) if (result.status === "fulfilled") await result.value.close();
  const outcomes = opened.map((result) => result.status === "fulfilled" ? "opened" : result.reason);
  assert.deepEqual(outcomes.map(String), ["opened", "opened", "opened"]);
  const versions = await query(url, `SELECT version FROM ${PG_VERSION_TABLE} ORDER BY version`);
  assert.deepEqual(
    versions.map((row) => row.version),
    Array.from({ length: PG_SCHEMA_VERSION }, (_, i) => i + 1),
  );
  const tables = await query(
    url,
    "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename",
  );
  assert.deepEqual(
    tables.map((row) => row.tablename),
    [...TABLES, "changes", "change_log_state", "nodes", "snapshots", PG_VERSION_TABLE].sort(),
  );
});

test("a database laid out by a newer server is refused and left as it was", async () => {
  await using db = await storeDatabase();
  await (await db.open()).close();
  await query(
    db.url,
    `INSERT INTO ${PG_VERSION_TABLE} (version) VALUES (${PG_SCHEMA_VERSION + 1})`,
  );
  await assert.rejects(
    openPostgresStorage(db.url, { clock: new FakeClock() }),
    (error: unknown) =>
      error instanceof StorageError &&
      error.message === `The database at ${db.url} was written by a newer chat-server (layout ` +
          `version ${PG_SCHEMA_VERSION + 1}; this one knows up to ${PG_SCHEMA_VERSION}); use ` +
          "that server or a newer one",
  );
  const versions = await query(db.url, `SELECT count(*)::int AS n FROM ${PG_VERSION_TABLE}`);
  assert.equal(versions[0]!.n, PG_SCHEMA_VERSION + 1);
});

test("a server nobody listens on is refused, without the password in the message", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  await assert.rejects(
    openPostgresStorage(`postgres://toom:secret@127.0.0.1:${port}/toom`, {
      clock: new FakeClock(),
    }),
    (error: unknown) =>
      error instanceof StorageError &&
      error.message.startsWith(
        `Cannot reach the database at postgres://toom:***@127.0.0.1:${port}/toom: `,
      ) &&
      /ECONNREFUSED/.test(error.message) && !error.message.includes("secret"),
  );
});

test("a database that does not exist is refused with the server's reason", async () => {
  const pg = await sharedPostgres();
  const url = pg.url.replace(/\/toom$/, "/missing");
  await assert.rejects(
    openPostgresStorage(url, { clock: new FakeClock() }),
    (error: unknown) =>
      error instanceof StorageError &&
      error.message === `Cannot use the database at ${url}: database "missing" does not exist`,
  );
});

test("a commit while the database server is down fails; once it is back, commits go on", async () => {
  await using pg = await startPostgres();
  const logger = new MemoryLogger();
  const storage = await openPostgresStorage(pg.url, { clock: new FakeClock(), logger });
  try {
    await storage.record({ t: "block", by: "yoda", other: "hans" });
    await pg.restart(async () => {
      await assert.rejects(storage.record({ t: "block", by: "yoda", other: "vader" }));
    });
    await storage.record({ t: "block", by: "yoda", other: "obiwan" });
  } finally {
    await storage.close();
  }
  const blocks = await query(pg.url, "SELECT other FROM blocks ORDER BY other");
  assert.deepEqual(blocks.map((row) => row.other), ["hans", "obiwan"]);
  assert.equal(logger.warnings.length, 1);
});
