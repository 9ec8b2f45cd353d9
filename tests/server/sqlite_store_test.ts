/**
 * What only toom.db (lib/server/store/sqlite.ts) does: one server at a time per file, the upgrade
 * of an older layout, and the files it refuses to open. What a Store on it keeps across a restart
 * and how its commits fail are in durable_store_test.ts, with PostgreSQL's; the rules every storage
 * follows are in store_contract_test.ts.
 */
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import {
  APPLICATION_ID,
  MIGRATIONS,
  SCHEMA_VERSION,
  TABLES,
} from "../../lib/server/store/schema.ts";
import { openSqliteStorage, StorageError } from "../../lib/server/store/sqlite.ts";
import { FakeClock } from "../../lib/shared/clock.ts";
import { sqliteTests, storeDir } from "../../testing/store_fixture.ts";
import { tempDir } from "../../testing/temp_dir.ts";

const { ignore } = sqliteTests("toom.db tests");

function test(name: string, fn: () => Promise<void>): void {
  Deno.test({ name, ignore, fn });
}

test("a second store on a file in use is refused until the first is closed", async () => {
  await using dir = await tempDir("toom_store_");
  const path = `${dir.path}/toom.db`;
  const first = openSqliteStorage(path, { clock: new FakeClock() });
  try {
    assert.throws(
      () => openSqliteStorage(path, { clock: new FakeClock() }),
      (error: unknown) =>
        error instanceof StorageError &&
        error.message === `${path} is in use by another chat-server; stop it, or give this ` +
            "one another --data-dir",
    );
  } finally {
    await first.close();
  }
  await openSqliteStorage(path, { clock: new FakeClock() }).close();
});

/** Makes a database at `path` with `sql` and closes it. */
function makeDatabase(path: string, sql: string): void {
  const db = new DatabaseSync(path);
  try {
    db.exec(sql);
  } finally {
    db.close();
  }
}

function pragma(path: string, name: string): number {
  const db = new DatabaseSync(path);
  try {
    return Number(Object.values(db.prepare(`PRAGMA ${name}`).get()!)[0]);
  } finally {
    db.close();
  }
}

test("a version-1 file is upgraded to the current layout and keeps its rows", async () => {
  await using dir = await storeDir();
  makeDatabase(
    dir.path,
    `${MIGRATIONS[0]};
     PRAGMA user_version = 1; PRAGMA application_id = ${APPLICATION_ID};
     INSERT INTO mail VALUES (4, 'yoda', 'hans', 'hans: hello', 'r4', 1000);
     INSERT INTO blocks VALUES ('yoda', 'vader');`,
  );
  const opened = dir.open({ config: { keepBoard: true } });
  assert.deepEqual(opened.storage.contents.mail, [
    { id: 4, to: "yoda", from: "hans", line: "hans: hello", ref: "r4", time: 1000 },
  ]);
  assert.equal(opened.store.relations.hasBlocked("yoda", "vader"), true);
  await opened.store.board.post("yoda", "the board table exists");
  await opened.close();
  assert.equal(pragma(dir.path, "user_version"), SCHEMA_VERSION);
  const db = new DatabaseSync(dir.path);
  const tables = db.prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")
    .all().map((row) => row.name);
  db.close();
  assert.deepEqual(tables, [...TABLES].sort());
});

/** Asserts that opening `path` is refused with a StorageError whose message matches `pattern`. */
function assertRefused(path: string, pattern: RegExp): void {
  assert.throws(
    () => openSqliteStorage(path, { clock: new FakeClock() }).close(),
    (error: unknown) => error instanceof StorageError && pattern.test(error.message),
  );
}

test("a file written by a newer server is refused and left as it was", async () => {
  await using dir = await storeDir();
  makeDatabase(
    dir.path,
    `${MIGRATIONS.join(";")}; PRAGMA user_version = ${SCHEMA_VERSION + 1};
     PRAGMA application_id = ${APPLICATION_ID};`,
  );
  assertRefused(dir.path, /newer chat-server/);
  assert.equal(pragma(dir.path, "user_version"), SCHEMA_VERSION + 1);
});

test("a damaged file is refused: random bytes, then text", async () => {
  await using dir = await storeDir();
  const bytes = crypto.getRandomValues(new Uint8Array(8192));
  await Deno.writeFile(dir.path, bytes);
  assertRefused(dir.path, /damaged/);
  assert.deepEqual(await Deno.readFile(dir.path), bytes, "left as it was");
  await Deno.writeTextFile(dir.path, "yoda jedi\n".repeat(500));
  assertRefused(dir.path, /damaged/);
});

test("another application's SQLite database is refused", async () => {
  await using dir = await storeDir();
  makeDatabase(dir.path, "CREATE TABLE foo (bar TEXT)");
  assertRefused(dir.path, /is not a TOOM database/);
  await Deno.remove(dir.path);
  makeDatabase(dir.path, `${MIGRATIONS.join(";")}; PRAGMA application_id = 1234;`);
  assertRefused(dir.path, /is not a TOOM database/);
});

test("a path in a directory that does not exist is refused", async () => {
  await using dir = await tempDir("toom_store_");
  assertRefused(`${dir.path}/missing/toom.db`, /missing\/toom\.db/);
});
