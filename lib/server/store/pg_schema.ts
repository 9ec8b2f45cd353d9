/**
 * The layout of a TOOM database on PostgreSQL, by version: the tables of toom.db (schema.ts) in
 * PostgreSQL's types. Each version is the step from the one before; the versions applied are rows
 * of `toom_schema`, so a newer server upgrades an older database and a database newer than this
 * server is refused. Several servers may start at once on one database: the check and the upgrade
 * are one transaction that first takes the advisory lock `PG_LOCK`.
 */

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
];

/** The version this server writes. */
export const PG_SCHEMA_VERSION = PG_MIGRATIONS.length;
