/**
 * The store on PostgreSQL (the npm package `postgres`), for servers that share their state: the
 * tables of toom.db in a database of their own (pg_schema.ts). At open the layout is checked,
 * created or upgraded and the contents read, in one transaction under an advisory lock, so that
 * several servers may start at once. Changes are then written in group commits (group_commit.ts),
 * each batch one transaction whose statements travel together; each change's promise resolves
 * once its transaction is committed.
 */
import postgres from "postgres";
import { appendChanges } from "../cluster/change_log.ts";
import type { Clock } from "../../shared/clock.ts";
import type { Logger } from "../../shared/logger.ts";
import { GroupCommit } from "./group_commit.ts";
import { type Change, type Storage, StorageError, type StoreContents } from "./journal.ts";
import {
  PG_LOCK,
  PG_MIGRATIONS,
  PG_SCHEMA_VERSION,
  PG_VERSION_TABLE,
  PG_VERSION_TABLE_SQL,
} from "./pg_schema.ts";
import type { Statement, StatementName } from "./statements.ts";

/** Options of {@linkcode openPostgresStorage}. */
export interface PostgresOptions {
  clock: Clock;
  /** Hears of commits that failed (at most one warning a minute). */
  logger?: Logger;
  /** How long to wait for a connection before giving up, in seconds. Default 10. */
  connectTimeout?: number;
  /**
   * The cluster node this storage writes for: when given, every committed batch also appends its
   * changes to the change log under this id, in the same transaction (appendChanges in
   * lib/server/cluster/change_log.ts). Without it nothing is logged.
   */
  logChangesAs?: string;
}

type Sql = postgres.Sql;
type Transaction = postgres.TransactionSql;

/** The SQL text of each statement changes become. */
const SQL: Record<StatementName, string> = {
  block: "INSERT INTO blocks (by_user, other) VALUES ($1, $2) ON CONFLICT DO NOTHING",
  unblock: "DELETE FROM blocks WHERE by_user = $1 AND other = $2",
  mail: "INSERT INTO mail (id, to_user, from_user, line, ref, time) " +
    "VALUES ($1, $2, $3, $4, $5, $6)",
  delivered: "DELETE FROM mail WHERE id = $1",
  seen: `INSERT INTO seen ("user", time) VALUES ($1, $2) ` +
    'ON CONFLICT ("user") DO UPDATE SET time = excluded.time',
  lockout: `INSERT INTO lockouts ("user", failures, until) VALUES ($1, $2, $3) ` +
    `ON CONFLICT ("user") DO UPDATE SET failures = excluded.failures, until = excluded.until`,
  unlock: `DELETE FROM lockouts WHERE "user" = $1`,
  account: `INSERT INTO accounts ("user", secret) VALUES ($1, $2) ` +
    `ON CONFLICT ("user") DO UPDATE SET secret = excluded.secret`,
  accountDone: `DELETE FROM accounts WHERE "user" = $1`,
  // `edited` comes as 0 or 1, as SQLite stores it.
  post: "INSERT INTO board (id, author, text, time, edited) VALUES ($1, $2, $3, $4, $5 <> 0) " +
    "ON CONFLICT (id) DO UPDATE SET author = excluded.author, text = excluded.text, " +
    "time = excluded.time, edited = excluded.edited",
  unpost: "DELETE FROM board WHERE id = $1",
  clearBoard: "DELETE FROM board",
  online: `INSERT INTO online ("user", time) VALUES ($1, $2) ` +
    `ON CONFLICT ("user") DO UPDATE SET time = excluded.time`,
  offline: `DELETE FROM online WHERE "user" = $1`,
  alive: "INSERT INTO meta (key, value) VALUES ('alive', $1) " +
    "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
};

/** `url` without its password, for messages. */
export function redactUrl(url: string): string {
  return url.replace(/^([a-z]+:\/\/[^:@/]*):[^@/]*@/i, "$1:***@");
}

/**
 * Connects to the database at `url` (`postgres://USER@HOST:PORT/DB`), creates or upgrades its
 * layout and reads what it holds. Throws StorageError when the server cannot be reached, refuses
 * the connection, or holds a layout newer than this server's.
 */
export async function openPostgresStorage(
  url: string,
  options: PostgresOptions,
): Promise<PostgresStorage> {
  const location = redactUrl(url);
  let sql: Sql;
  try {
    sql = postgres(url, {
      // Commits go one at a time (group commit), so one connection is all it takes.
      max: 1,
      connect_timeout: options.connectTimeout ?? 10,
      fetch_types: false,
      onnotice: () => {},
      connection: { application_name: "chat-server" },
    });
  } catch (error) {
    throw new StorageError(`Cannot use the database at ${location}: ${(error as Error).message}`);
  }
  try {
    const contents = await sql.begin(async (tx) => {
      await upgrade(tx, location);
      return await load(tx, options.clock);
    });
    return new PostgresStorage(sql, location, contents, options);
  } catch (error) {
    await sql.end({ timeout: 1 }).catch(() => {});
    if (error instanceof StorageError) throw error;
    const message = (error as Error).message;
    throw error instanceof postgres.PostgresError
      ? new StorageError(`Cannot use the database at ${location}: ${message}`)
      : new StorageError(
        `Cannot reach the database at ${location}: ${message}; is PostgreSQL running there?`,
      );
  }
}

/**
 * Checks the layout version and upgrades an older one, holding the advisory lock until the
 * transaction ends: a second server starting meanwhile waits, then finds the work done.
 */
async function upgrade(tx: Transaction, location: string): Promise<void> {
  await tx.unsafe(`SELECT pg_advisory_xact_lock(${PG_LOCK})`);
  await tx.unsafe(PG_VERSION_TABLE_SQL);
  const [row] = await tx.unsafe(`SELECT coalesce(max(version), 0) AS v FROM ${PG_VERSION_TABLE}`);
  const version = Number(row?.v ?? 0);
  if (version > PG_SCHEMA_VERSION) {
    throw new StorageError(
      `The database at ${location} was written by a newer chat-server (layout version ` +
        `${version}; this one knows up to ${PG_SCHEMA_VERSION}); use that server or a newer one`,
    );
  }
  for (let step = version; step < PG_SCHEMA_VERSION; step++) {
    await tx.unsafe(PG_MIGRATIONS[step]!);
    await tx.unsafe(`INSERT INTO ${PG_VERSION_TABLE} (version) VALUES ($1)`, [step + 1]);
  }
}

/**
 * Reads everything, first turning the users a run that was killed left online into last-seen
 * times (the last moment that run is known to have been alive), as toom.db does.
 */
async function load(tx: Transaction, clock: Clock): Promise<StoreContents> {
  const [meta] = await tx.unsafe("SELECT value FROM meta WHERE key = 'alive'");
  const alive = Number(meta?.value ?? 0);
  await tx.unsafe(
    `INSERT INTO seen ("user", time) SELECT "user", greatest(time, $1) FROM online ` +
      `ON CONFLICT ("user") DO UPDATE SET time = excluded.time`,
    [alive],
  );
  await tx.unsafe("DELETE FROM online");
  await tx.unsafe(SQL.alive, [String(clock.now())]);
  const rows = (query: string) => tx.unsafe(query);
  const [blocks, mail, seen, lockouts, accounts, board] = await Promise.all([
    rows("SELECT by_user, other FROM blocks"),
    rows("SELECT id, to_user, from_user, line, ref, time FROM mail ORDER BY id"),
    rows(`SELECT "user", time FROM seen`),
    rows(`SELECT "user", failures, until FROM lockouts`),
    rows(`SELECT "user", secret FROM accounts`),
    rows("SELECT id, author, text, time, edited FROM board ORDER BY id"),
  ]);
  // bigint columns come back as text.
  return {
    blocks: blocks.map((row) => ({ by: row.by_user, other: row.other })),
    mail: mail.map((row) => ({
      id: Number(row.id),
      to: row.to_user,
      from: row.from_user,
      line: row.line,
      ref: row.ref,
      time: Number(row.time),
    })),
    seen: seen.map((row) => ({ user: row.user, time: Number(row.time) })),
    lockouts: lockouts.map((row) => ({
      user: row.user,
      failures: row.failures,
      until: Number(row.until),
    })),
    accounts: accounts.map((row) => ({ user: row.user, secret: row.secret })),
    board: board.map((row) => ({
      id: Number(row.id),
      author: row.author,
      text: row.text,
      time: Number(row.time),
      edited: row.edited,
    })),
  };
}

/**
 * A database on PostgreSQL: what it held at start, and the journal that writes changes to it in
 * group commits, one transaction at a time.
 */
export class PostgresStorage implements Storage {
  readonly #journal: GroupCommit;

  /** Takes over `sql` (closed with the storage); `contents` is what the database held. */
  constructor(
    sql: Sql,
    readonly location: string,
    readonly contents: StoreContents,
    options: PostgresOptions,
  ) {
    const node = options.logChangesAs;
    const committer = {
      async commit(statements: Statement[], changes: readonly Change[]) {
        // The statements are sent together, without waiting for each answer in turn; the log
        // entries follow them, so a batch whose writes fail appends nothing.
        await sql.begin((tx) => {
          // A query is sent when it is first awaited or executed: these go first, in order.
          const writes: Promise<unknown>[] = statements.map(([name, params]) =>
            tx.unsafe(SQL[name], params, { prepare: true }).execute()
          );
          if (node !== undefined && changes.length > 0) {
            writes.push(appendChanges(tx, node, changes));
          }
          return writes;
        });
      },
      close: () => sql.end({ timeout: 5 }),
    };
    this.#journal = new GroupCommit(committer, {
      clock: options.clock,
      logger: options.logger,
      location,
    });
  }

  note(change: Change): void {
    this.#journal.note(change);
  }

  record(change: Change): Promise<void> {
    return this.#journal.record(change);
  }

  /** Commits what is pending and ends the connection. */
  close(): Promise<void> {
    return this.#journal.close();
  }
}
