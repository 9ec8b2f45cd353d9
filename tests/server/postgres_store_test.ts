/**
 * What only the store on PostgreSQL (lib/server/store/postgres.ts) does: how its group commits
 * batch, layouts and servers it refuses, several servers opening one fresh database at once, and a
 * database server that restarts. What a Store on it keeps across a restart and how its commits
 * fail are in durable_store_test.ts, with toom.db's; the rules every storage follows are in
 * store_contract_test.ts. Each test gets a fresh database on the file's throwaway PostgreSQL
 * server.
 */
import assert from "node:assert/strict";
import { StorageError } from "../../lib/server/store/journal.ts";
import { PG_SCHEMA_VERSION, PG_VERSION_TABLE } from "../../lib/server/store/pg_schema.ts";
import { openPostgresStorage } from "../../lib/server/store/postgres.ts";
import { TABLES } from "../../lib/server/store/schema.ts";
import { FakeClock } from "../../lib/shared/clock.ts";
import { MemoryLogger } from "../../lib/shared/logger.ts";
import { postgresTests, sharedPostgres, startPostgres } from "../../testing/postgres.ts";
import { queryPostgres as query, storeDatabase } from "../../testing/store_fixture.ts";

const { ignore } = postgresTests("PostgreSQL store tests");

function test(name: string, fn: () => Promise<void>): void {
  Deno.test({ name, ignore, fn });
}

/** Lets a commit scheduled for when the event loop is idle start. */
function idle(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

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
