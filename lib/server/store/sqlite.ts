/**
 * The durable store: toom.db, one SQLite file (the runtime's built-in node:sqlite) in WAL mode.
 * It is checked, upgraded and read at start; changes are then written in group commits by a
 * thread of their own (sqlite_writer.ts): everything recorded while a commit is under way goes
 * into the next, and each change's promise resolves once its transaction is committed, so a reply
 * that promises something is sent only after it is on the disk.
 */
import { DatabaseSync } from "node:sqlite";
import { setImmediate } from "node:timers";
import type { Clock } from "../../shared/clock.ts";
import type { Logger } from "../../shared/logger.ts";
import type { Change, MailRecord, PostRecord, Storage, StoreContents } from "./journal.ts";
import { APPLICATION_ID, MIGRATIONS, SCHEMA_VERSION, TABLES } from "./schema.ts";
import { SqliteWriter, type SqlValue, type Step } from "./sqlite_writer.ts";

/** The database file's name in the server's directory. */
export const DATABASE_FILE = "toom.db";

/**
 * How much a commit waits for the disk. `full`: until the data is on the disk (survives a power
 * loss). `normal`: until the operating system has it (survives the server being killed, not a
 * power loss or a crash of the machine; commits cost less).
 */
export type SyncMode = "full" | "normal";

/** How long a noted change may wait for a commit to ride along with. */
const NOTE_DELAY_MS = 100;

const ignore = () => {};

/** How often an idle store notes that the server is alive (for users a killed run had online). */
const ALIVE_EVERY_MS = 10_000;

/** A database that cannot be used: the message says which file and why. */
export class StorageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "StorageError";
  }
}

/** Options of {@linkcode openSqliteStorage}. */
export interface SqliteOptions {
  clock: Clock;
  /** Default `full`. */
  sync?: SyncMode;
  /** Hears of commits that failed (at most one warning a minute). */
  logger?: Logger;
}

interface Pending {
  change: Change;
  resolve: () => void;
  reject: (error: unknown) => void;
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

/** The statements changes become, by name; the writer thread prepares them once. */
const SQL = {
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
type SqlName = keyof typeof SQL;
const NAMES = Object.keys(SQL) as SqlName[];
const INDEX = Object.fromEntries(NAMES.map((name, index) => [name, index])) as Record<
  SqlName,
  number
>;

function step(name: SqlName, ...params: SqlValue[]): Step {
  return [INDEX[name], params];
}

/** The statements that record `change`. */
function steps(change: Change): Step[] {
  switch (change.t) {
    case "block":
      return [step("block", change.by, change.other)];
    case "unblock":
      return [step("unblock", change.by, change.other)];
    case "mail": {
      const { id, to, from, line, ref, time } = change.mail;
      return [step("mail", id, to, from, line, ref, time)];
    }
    case "delivered":
      return change.ids.map((id) => step("delivered", id));
    case "seen":
      return [step("seen", change.user, change.time)];
    case "lockout":
      return change.failures === 0 && change.until === 0
        ? [step("unlock", change.user)]
        : [step("lockout", change.user, change.failures, change.until)];
    case "account":
      return [step("account", change.user, change.secret)];
    case "account-done":
      return [step("accountDone", change.user)];
    case "post": {
      const { id, author, text, time, edited } = change.post;
      return [step("post", id, author, text, time, edited ? 1 : 0)];
    }
    case "unpost":
      return [step("unpost", change.id)];
    case "clear-board":
      return [step("clearBoard")];
    case "online":
      return [step("online", change.user, change.time)];
    case "offline":
      return [step("offline", change.user)];
  }
}

/**
 * toom.db: what it held at start, and the journal that writes changes to it. Changes are
 * committed by a writer thread, one batch at a time: what is recorded while a batch is being
 * committed goes into the next one (group commit), and each change's promise settles with the
 * commit that holds it.
 */
export class SqliteStorage implements Storage {
  readonly contents: StoreContents;
  readonly #clock: Clock;
  readonly #writer: SqliteWriter;
  #pending: Pending[] = [];
  #scheduled = false;
  /** The commit in flight, if any. */
  #inFlight: Promise<void> | undefined;
  #closed = false;
  readonly #alive: ReturnType<typeof setInterval>;
  /** Commits noted changes when nothing else has by then. */
  #noteTimer: ReturnType<typeof setTimeout> | undefined;
  readonly #logger: Logger | undefined;
  #lastWarning: number | undefined;
  readonly #owner: Deno.FsFile;

  /**
   * Reads `db` (then closed) and hands the file to a writer thread with `pragmas`; `owner` holds
   * the file's lock until the store is closed.
   */
  constructor(
    db: DatabaseSync,
    readonly location: string,
    options: SqliteOptions,
    pragmas: string[],
    owner: Deno.FsFile,
  ) {
    this.#owner = owner;
    this.#clock = options.clock;
    this.#logger = options.logger;
    try {
      this.contents = load(db, options.clock);
    } finally {
      db.close();
    }
    this.#writer = new SqliteWriter(location, pragmas, NAMES.map((name) => SQL[name]));
    this.#alive = setInterval(() => this.#touch(), ALIVE_EVERY_MS);
    Deno.unrefTimer(this.#alive);
  }

  note(change: Change): void {
    if (this.#closed) return;
    this.#pending.push({ change, resolve: ignore, reject: ignore });
    if (this.#scheduled || this.#inFlight || this.#noteTimer !== undefined) return;
    this.#noteTimer = setTimeout(() => {
      this.#noteTimer = undefined;
      this.#flush();
    }, NOTE_DELAY_MS);
  }

  record(change: Change): Promise<void> {
    if (this.#closed) return Promise.reject(new StorageError(`${this.location} is closed`));
    return new Promise((resolve, reject) => {
      this.#pending.push({ change, resolve, reject });
      if (this.#scheduled || this.#inFlight) return;
      this.#scheduled = true;
      // Everything recorded until the event loop has handled the input at hand goes into the same
      // commit (setImmediate runs after that; a zero timeout would wait a millisecond or more).
      setImmediate(() => {
        this.#scheduled = false;
        this.#flush();
      });
    });
  }

  /** Sends what is pending as one commit; when it is done, the next (gathered meanwhile). */
  #flush(): void {
    if (this.#inFlight || this.#pending.length === 0) return;
    const batch = this.#pending;
    this.#pending = [];
    const commit = this.#writer.commit([
      ...batch.flatMap(({ change }) => steps(change)),
      step("alive", String(this.#clock.now())),
    ]);
    this.#inFlight = commit.then(
      () => {
        for (const { resolve } of batch) resolve();
      },
      (error) => {
        this.#warn(error);
        for (const { reject } of batch) reject(error);
      },
    ).finally(() => {
      this.#inFlight = undefined;
      this.#flush();
    });
  }

  /** Tells the operator a commit failed, at most once a minute (the users are told each time). */
  #warn(error: unknown): void {
    const now = this.#clock.now();
    if (this.#lastWarning !== undefined && now - this.#lastWarning < 60_000) return;
    this.#lastWarning = now;
    this.#logger?.warn(
      `Could not write ${this.location}: ${error} (what needs it is refused meanwhile; every later change tries again)`,
    );
  }

  /** Notes that the server is alive, when nothing else is being written. */
  #touch(): void {
    if (this.#closed || this.#scheduled || this.#inFlight) return;
    // A failure is reported to whoever commits next.
    this.#writer.commit([step("alive", String(this.#clock.now()))]).catch(() => {});
  }

  /** Commits what is pending and closes the file. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#alive);
    clearTimeout(this.#noteTimer);
    this.#flush();
    while (this.#inFlight) await this.#inFlight;
    await this.#writer.close().catch(() => {});
    this.#owner.close();
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
