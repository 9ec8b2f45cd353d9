/**
 * The store on PostgreSQL (the npm package `postgres`), for servers that share their state: the
 * tables of toom.db in a database of their own (pg_schema.ts). At open the layout is checked,
 * created or upgraded and the contents read, in one transaction under an advisory lock, so that
 * several servers may start at once. Changes are then written in group commits (group_commit.ts),
 * each batch one transaction whose statements travel together; each change's promise resolves
 * once its transaction is committed.
 */
import postgres from "postgres";
import { appendChanges, readLastSeq } from "../cluster/change_log.ts";
import type { Clock } from "../../shared/clock.ts";
import type { Logger } from "../../shared/logger.ts";
import { GroupCommit } from "./group_commit.ts";
import { type Change, type Storage, StorageError, type StoreContents } from "./journal.ts";
import { upgradeLayout } from "./pg_schema.ts";
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
  /**
   * Load as a cluster node starts: the contents together with the change-log seq they reflect
   * ({@linkcode loadAtSeq}; `storage.seq` then says which), read-only. Users left online are left
   * as they are (other nodes' users are online; a lost node's are logged out through the log).
   * Default false: the contents as a single server loads them, with no seq.
   */
  atSeq?: boolean;
}

/** What {@linkcode loadAtSeq} read: the contents, and the seq of the last change they reflect. */
export interface ContentsAtSeq {
  contents: StoreContents;
  /** Every change up to this seq is in `contents`, none after it (0: none was ever logged). */
  seq: number;
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
    if (options.atSeq) {
      await sql.begin((tx) => upgradeLayout(tx, location));
      const { contents, seq } = await loadAtSeq(sql);
      return new PostgresStorage(sql, location, contents, { ...options, seq });
    }
    const contents = await sql.begin(async (tx) => {
      await upgradeLayout(tx, location);
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
  return await readContents(tx);
}

/**
 * Reads a cluster node's starting point (docs/CLUSTER.md, "catching up"): the tables and the seq
 * of the last change they reflect, in one read-only REPEATABLE READ transaction, so that every
 * query reads the one snapshot taken at its first. A node then follows the log from `seq`
 * (ChangeTail's `after`) and so applies every change exactly once. Register the node (NodeLease)
 * before loading: pruning waits for a registered node that has not reported progress.
 *
 * Why the snapshot is the whole story, with no lock: a change is in the tables and in the log (and
 * in change_log_state) through the one transaction that appended it, and a snapshot sees a
 * transaction whole or not at all. Appending transactions commit in seq order: each holds
 * CHANGE_LOG_LOCK until it ends, and PostgreSQL releases locks only once the commit is visible,
 * so the next one takes its numbers after that. So the appends a snapshot sees are exactly those
 * up to the last_seq it reads; one in flight (holding the lock, or committing meanwhile) is
 * invisible in every table alike, and comes later through the tail. Taking the lock in shared mode
 * would add nothing but a wait for appenders, and as the first statement it would not even help:
 * the snapshot is taken as that statement starts, before it waits.
 */
export async function loadAtSeq(sql: Sql): Promise<ContentsAtSeq> {
  return await sql.begin("isolation level repeatable read read only", async (tx) => {
    const seq = await readLastSeq(tx);
    return { contents: await readContents(tx), seq };
  }) as ContentsAtSeq;
}

/** Reads the tables, as they are in `tx`'s snapshot (also a cluster node's start, checkpoint.ts). */
export async function readContents(tx: Transaction): Promise<StoreContents> {
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
 * group commits, one transaction at a time (closing it commits what is pending and ends the
 * connection).
 */
export class PostgresStorage extends GroupCommit implements Storage {
  /** With `atSeq`, the change-log seq `contents` reflects (loadAtSeq); otherwise undefined. */
  readonly seq: number | undefined;

  /** Takes over `sql` (closed with the storage); `contents` is what the database held. */
  constructor(
    sql: Sql,
    location: string,
    readonly contents: StoreContents,
    options: PostgresOptions & { seq?: number },
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
    super(committer, { clock: options.clock, logger: options.logger, location });
    this.seq = options.seq;
  }
}
