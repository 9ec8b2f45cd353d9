/**
 * The layout of toom.db, by version: each version is the step from the one before, so a newer
 * server upgrades an older file (in one transaction) and a file newer than this server is refused.
 * The version is SQLite's `user_version`; `application_id` marks the file as TOOM's.
 */

/** 'TOOM' in ASCII: a SQLite file with another application id is not ours. */
export const APPLICATION_ID = 0x544f4f4d;

/** The steps, in order: `MIGRATIONS[v - 1]` turns version v - 1 into version v. */
export const MIGRATIONS: readonly string[] = [
  // 1: blocks, offline messages, last-seen times, lockouts, account changes in flight.
  `CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
   CREATE TABLE blocks (
     by_user TEXT NOT NULL, other TEXT NOT NULL, PRIMARY KEY (by_user, other)
   ) WITHOUT ROWID;
   CREATE TABLE mail (
     id INTEGER PRIMARY KEY, to_user TEXT NOT NULL, from_user TEXT NOT NULL,
     line TEXT NOT NULL, ref TEXT NOT NULL, time INTEGER NOT NULL
   );
   CREATE TABLE seen (user TEXT PRIMARY KEY, time INTEGER NOT NULL) WITHOUT ROWID;
   CREATE TABLE lockouts (
     user TEXT PRIMARY KEY, failures INTEGER NOT NULL, until INTEGER NOT NULL
   ) WITHOUT ROWID;
   CREATE TABLE accounts (user TEXT PRIMARY KEY, secret TEXT NOT NULL) WITHOUT ROWID;`,
  // 2: the board (--keep-board), and who is online, so that a killed server's users get a
  // last-seen time at the next start.
  `CREATE TABLE board (
     id INTEGER PRIMARY KEY, author TEXT NOT NULL, text TEXT NOT NULL,
     time INTEGER NOT NULL, edited INTEGER NOT NULL
   );
   CREATE TABLE online (user TEXT PRIMARY KEY, time INTEGER NOT NULL) WITHOUT ROWID;`,
];

/** The version this server writes. */
export const SCHEMA_VERSION = MIGRATIONS.length;

/** The tables of the current version (a file with other tables is not ours). */
export const TABLES = ["accounts", "blocks", "board", "lockouts", "mail", "meta", "online", "seen"];
