/**
 * The layout of a TOOM database on PostgreSQL, by version: the tables of toom.db (schema.ts) in
 * PostgreSQL's types. Each version is the step from the one before; the versions applied are rows
 * of `toom_schema`, so a newer server upgrades an older database and a database newer than this
 * server is refused. Several servers may start at once on one database: the check and the upgrade
 * are one transaction that first takes the advisory lock `PG_LOCK` ({@linkcode upgradeLayout}).
 */
import type postgres from "postgres";
import { StorageError } from "./journal.ts";

/** The table that says which layout versions have been applied (one row each, with when). */
export const PG_VERSION_TABLE = "toom_schema";

/** Creates the version table; run under the lock, before it is read. */
export const PG_VERSION_TABLE_SQL = `CREATE TABLE IF NOT EXISTS ${PG_VERSION_TABLE} (
  version integer PRIMARY KEY,
  applied timestamptz NOT NULL DEFAULT now()
)`;

/** The advisory lock key held while the layout is checked and upgraded: 'TOOM' in ASCII. */
export const PG_LOCK = 0x544f4f4d;

/**
 * The steps, in order: `PG_MIGRATIONS[v - 1]` turns version v - 1 into version v. Times are
 * milliseconds since the Unix epoch, as the server keeps them; `user` is quoted (a keyword).
 */
export const PG_MIGRATIONS: readonly string[] = [
  // 1: everything toom.db's layout version 2 has.
  `CREATE TABLE meta (key text PRIMARY KEY, value text NOT NULL);
   CREATE TABLE blocks (
     by_user text NOT NULL, other text NOT NULL, PRIMARY KEY (by_user, other)
   );
   CREATE TABLE mail (
     id bigint PRIMARY KEY, to_user text NOT NULL, from_user text NOT NULL,
     line text NOT NULL, ref text NOT NULL, time bigint NOT NULL
   );
   CREATE TABLE seen ("user" text PRIMARY KEY, time bigint NOT NULL);
   CREATE TABLE lockouts (
     "user" text PRIMARY KEY, failures integer NOT NULL, until bigint NOT NULL
   );
   CREATE TABLE accounts ("user" text PRIMARY KEY, secret text NOT NULL);
   CREATE TABLE board (
     id bigint PRIMARY KEY, author text NOT NULL, text text NOT NULL,
     time bigint NOT NULL, edited boolean NOT NULL
   );
   CREATE TABLE online ("user" text PRIMARY KEY, time bigint NOT NULL);`,
  // 2: the cluster's change log (lib/server/cluster/change_log.ts): every change, in one order.
  `CREATE TABLE changes (
     seq bigserial PRIMARY KEY, node text NOT NULL, change jsonb NOT NULL,
     at timestamptz NOT NULL DEFAULT now()
   );`,
  // 3: where the log is (change_log_state.last_seq: the seq of the last committed change, kept by
  // every append, so that it is known when pruning has emptied the log; a version 2 log is taken
  // at its word), and the cluster's nodes (lib/server/cluster/liveness.ts), each with the last
  // seq it has applied (last_seq, NULL until it reports one), which pruning waits for. The nodes
  // table may already exist, as liveness.ts made it before it was part of the layout.
  `CREATE TABLE change_log_state (
     one boolean PRIMARY KEY DEFAULT true CHECK (one), last_seq bigint NOT NULL
   );
   INSERT INTO change_log_state (last_seq) SELECT coalesce(max(seq), 0) FROM changes;
   CREATE TABLE IF NOT EXISTS nodes (
     id text PRIMARY KEY, key integer GENERATED ALWAYS AS IDENTITY UNIQUE,
     host text NOT NULL, port integer NOT NULL, started timestamptz NOT NULL
   );
   ALTER TABLE nodes ADD COLUMN IF NOT EXISTS last_seq bigint;`,
  // 4: checkpoints (lib/server/cluster/checkpoint.ts): a node's whole replica state as
  // StoreContents at a seq, since what proposals decide is in no other table; and how far the log
  // has ever been pruned (change_log_state.pruned_up_to), so that a node knows when the log alone
  // cannot rebuild the state.
  `CREATE TABLE snapshots (
     seq bigint PRIMARY KEY, contents jsonb NOT NULL, node text NOT NULL,
     at timestamptz NOT NULL DEFAULT now()
   );
   ALTER TABLE change_log_state ADD COLUMN pruned_up_to bigint NOT NULL DEFAULT 0;`,
];

/** The version this server writes. */
export const PG_SCHEMA_VERSION = PG_MIGRATIONS.length;

/**
 * Checks the layout version and upgrades an older one, inside `tx`, holding the advisory lock
 * until the transaction ends: a second server starting meanwhile waits, then finds the work done.
 * Throws StorageError, naming `location`, when the database is newer than this server.
 */
export async function upgradeLayout(tx: postgres.TransactionSql, location: string): Promise<void> {
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
