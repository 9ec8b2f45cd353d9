/**
 * The durable store: toom.db, one SQLite file (the runtime's built-in node:sqlite) in WAL mode.
 * It is checked, upgraded and read at start; changes are then written in group commits by a
 * thread of their own (sqlite_writer.ts): everything recorded while a commit is under way goes
 * into the next, and each change's promise resolves once its transaction is committed, so a reply
 * that promises something is sent only after it is on the disk.
 */
import { DatabaseSync } from "node:sqlite";
import type { Clock } from "../../shared/clock.ts";
import type { Logger } from "../../shared/logger.ts";
import { GroupCommit } from "./group_commit.ts";
import {
  type MailRecord,
  type PostRecord,
  type Storage,
  StorageError,
  type StoreContents,
} from "./journal.ts";
import { APPLICATION_ID, MIGRATIONS, SCHEMA_VERSION, TABLES } from "./schema.ts";
import type { Statement, StatementName } from "./statements.ts";
import { SqliteWriter } from "./sqlite_writer.ts";

export { StorageError };

/** The database file's name in the server's directory. */
export const DATABASE_FILE = "toom.db";

/**
 * How much a commit waits for the disk. `full`: until the data is on the disk (survives a power
 * loss). `normal`: until the operating system has it (survives the server being killed, not a
 * power loss or a crash of the machine; commits cost less).
 */
export type SyncMode = "full" | "normal";

/** Options of {@linkcode openSqliteStorage}. */
export interface SqliteOptions {
  clock: Clock;
  /** Default `full`. */
  sync?: SyncMode;
  /** Hears of commits that failed (at most one warning a minute). */
  logger?: Logger;
}

/**
 * Opens (creating if need be) the database at `path`, upgrades an older layout in one transaction,
 * and reads what it holds. Throws StorageError when the file is not a TOOM database, is damaged,
 * is newer than this server, or cannot be written.
 */
export function openSqliteStorage(path: string, options: SqliteOptions): SqliteStorage {
  const owner = claim(path);
  let db: DatabaseSync;
  try {
    db = new DatabaseSync(path);
  } catch (error) {
    owner.close();
    throw new StorageError(`Cannot open ${path}: ${(error as Error).message}`);
  }
  let pragmas: string[];
  try {
    pragmas = prepare(db, path, options.sync ?? "full");
  } catch (error) {
    db.close();
    owner.close();
    if (error instanceof StorageError) throw error;
    throw new StorageError(`Cannot use ${path}: ${(error as Error).message}`);
  }
  try {
    return new SqliteStorage(db, path, options, pragmas, owner);
  } catch (error) {
    owner.close();
    throw new StorageError(`Cannot use ${path}: ${(error as Error).message}`);
  }
}

/**
 * Makes sure no other server uses the file: one store per file, or two servers would each deliver
 * the same offline messages. The returned handle holds an exclusive lock (flock, which SQLite's
 * own locks do not touch) until it is closed, after the database. A new file is made readable by
 * its owner only (it holds private messages; SQLite gives its -wal and -shm files the same mode).
 */
function claim(path: string): Deno.FsFile {
  let file: Deno.FsFile;
  try {
    file = Deno.openSync(path, { read: true, write: true, create: true, mode: 0o600 });
  } catch (error) {
    throw new StorageError(`Cannot open ${path}: ${(error as Error).message}`);
  }
  if (!file.tryLockSync(true)) {
    file.close();
    throw new StorageError(
      `${path} is in use by another chat-server; stop it, or give this one another --data-dir`,
    );
  }
  return file;
}

function value(db: DatabaseSync, sql: string): unknown {
  const row = db.prepare(sql).get() as Record<string, unknown> | undefined;
  return row ? Object.values(row)[0] : undefined;
}

/**
 * Checks the file is a sound TOOM database of a version this server knows, and upgrades it;
 * returns the settings every connection to it uses.
 */
function prepare(db: DatabaseSync, path: string, sync: SyncMode): string[] {
  let version: number;
  try {
    version = Number(value(db, "PRAGMA user_version"));
    const check = db.prepare("PRAGMA quick_check").all() as Array<Record<string, unknown>>;
    const problems = check.map((row) => String(Object.values(row)[0])).filter((v) => v !== "ok");
    if (problems.length > 0) throw new Error(problems.slice(0, 3).join("; "));
  } catch (error) {
    throw new StorageError(
      `${path} is damaged or is not a database (${(error as Error).message}); ` +
        "move it away to start with an empty store",
    );
  }
  const application = Number(value(db, "PRAGMA application_id"));
  const tables = (db.prepare("SELECT name FROM sqlite_schema WHERE type = 'table'").all() as Array<
    { name: string }
  >).map((row) => row.name);
  const foreign = tables.filter((name) => !TABLES.includes(name) && !name.startsWith("sqlite_"));
  if ((application !== 0 && application !== APPLICATION_ID) || foreign.length > 0) {
    throw new StorageError(`${path} is not a TOOM database; move it away or use --data-dir`);
  }
  if (version > SCHEMA_VERSION) {
    throw new StorageError(
      `${path} was written by a newer chat-server (layout version ${version}; this one knows up ` +
        `to ${SCHEMA_VERSION}); use that server or a newer one`,
    );
  }
  if (String(value(db, "PRAGMA journal_mode = WAL")).toLowerCase() !== "wal") {
    throw new StorageError(`${path}: the database cannot use write-ahead logging here`);
  }
  const pragmas = [
    `PRAGMA synchronous = ${sync === "full" ? "FULL" : "NORMAL"}`,
    "PRAGMA busy_timeout = 5000",
  ];
  for (const pragma of pragmas) db.exec(pragma);
  // Upgrading (or creating) is one transaction: a server killed halfway leaves the old version.
  // Writing here also proves at start, not at the first promise, that the file can be written.
  db.exec("BEGIN IMMEDIATE");
  try {
    for (let step = version; step < SCHEMA_VERSION; step++) db.exec(MIGRATIONS[step]!);
    db.exec(`PRAGMA user_version = ${SCHEMA_VERSION}`);
    db.exec(`PRAGMA application_id = ${APPLICATION_ID}`);
    db.exec("COMMIT");
  } catch (error) {
    rollback(db);
    throw error;
  }
  return pragmas;
}

/** Ends a failed transaction, if SQLite has not ended it already. */
function rollback(db: DatabaseSync): void {
  try {
    db.exec("ROLLBACK");
  } catch {
    // No transaction was active: the error that brought us here is the one to report.
  }
}

/** The SQL text of each statement changes become; the writer thread prepares them once. */
const SQL: Record<StatementName, string> = {
  block: "INSERT OR IGNORE INTO blocks (by_user, other) VALUES (?, ?)",
  unblock: "DELETE FROM blocks WHERE by_user = ? AND other = ?",
  mail: "INSERT INTO mail (id, to_user, from_user, line, ref, time) VALUES (?, ?, ?, ?, ?, ?)",
  delivered: "DELETE FROM mail WHERE id = ?",
  seen: "INSERT OR REPLACE INTO seen (user, time) VALUES (?, ?)",
  lockout: "INSERT OR REPLACE INTO lockouts (user, failures, until) VALUES (?, ?, ?)",
  unlock: "DELETE FROM lockouts WHERE user = ?",
  account: "INSERT OR REPLACE INTO accounts (user, secret) VALUES (?, ?)",
  accountDone: "DELETE FROM accounts WHERE user = ?",
  post: "INSERT OR REPLACE INTO board (id, author, text, time, edited) VALUES (?, ?, ?, ?, ?)",
  unpost: "DELETE FROM board WHERE id = ?",
  clearBoard: "DELETE FROM board",
  online: "INSERT OR REPLACE INTO online (user, time) VALUES (?, ?)",
  offline: "DELETE FROM online WHERE user = ?",
  alive: "INSERT OR REPLACE INTO meta (key, value) VALUES ('alive', ?)",
};
const NAMES = Object.keys(SQL) as StatementName[];
const INDEX = Object.fromEntries(NAMES.map((name, index) => [name, index])) as Record<
  StatementName,
  number
>;

/**
 * toom.db: what it held at start, and the journal that writes changes to it. Changes are
 * committed in groups (group_commit.ts) by a writer thread: what is recorded while a batch is
 * being committed goes into the next one, and each change's promise settles with its commit;
 * closing it commits what is pending and closes the file.
 */
export class SqliteStorage extends GroupCommit implements Storage {
  readonly contents: StoreContents;

  /**
   * Reads `db` (then closed) and hands the file to a writer thread with `pragmas`; `owner` holds
   * the file's lock until the store is closed.
   */
  constructor(
    db: DatabaseSync,
    location: string,
    options: SqliteOptions,
    pragmas: string[],
    owner: Deno.FsFile,
  ) {
    let contents: StoreContents;
    try {
      contents = load(db, options.clock);
    } finally {
      db.close();
    }
    const writer = new SqliteWriter(location, pragmas, NAMES.map((name) => SQL[name]));
    const committer = {
      commit: (statements: Statement[]) =>
        writer.commit(statements.map(([name, params]) => [INDEX[name], params])),
      async close() {
        await writer.close().catch(() => {});
        owner.close();
      },
    };
    super(committer, { ...options, location });
    this.contents = contents;
  }
}

/**
 * Reads everything, first turning the users a killed run left online into last-seen times (the
 * last moment that run is known to have been alive).
 */
function load(db: DatabaseSync, clock: Clock): StoreContents {
  const all = <T>(sql: string) => db.prepare(sql).all() as T[];
  db.exec("BEGIN IMMEDIATE");
  try {
    const alive = Number(value(db, "SELECT value FROM meta WHERE key = 'alive'") ?? 0);
    const seen = db.prepare(SQL.seen);
    for (const { user, time } of all<{ user: string; time: number }>("SELECT * FROM online")) {
      seen.run(user, Math.max(alive, time));
    }
    db.exec("DELETE FROM online");
    db.prepare(SQL.alive).run(String(clock.now()));
    const contents: StoreContents = {
      blocks: all<{ by_user: string; other: string }>("SELECT by_user, other FROM blocks")
        .map((row) => ({ by: row.by_user, other: row.other })),
      mail: all<{ id: number; to_user: string; from_user: string } & MailRecord>(
        "SELECT * FROM mail ORDER BY id",
      ).map(({ id, to_user, from_user, line, ref, time }) => ({
        id,
        to: to_user,
        from: from_user,
        line,
        ref,
        time,
      })),
      seen: all<{ user: string; time: number }>("SELECT user, time FROM seen"),
      lockouts: all<{ user: string; failures: number; until: number }>(
        "SELECT user, failures, until FROM lockouts",
      ),
      accounts: all<{ user: string; secret: string }>("SELECT user, secret FROM accounts"),
      board: all<Omit<PostRecord, "edited"> & { edited: number }>(
        "SELECT * FROM board ORDER BY id",
      ).map((row) => ({ ...row, edited: row.edited !== 0 })),
    };
    db.exec("COMMIT");
    return contents;
  } catch (error) {
    rollback(db);
    throw error;
  }
}
