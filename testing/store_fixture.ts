/**
 * Stores for tests: a Store (lib/server/store/store.ts) over memory files and a fake clock, on any
 * storage (memory, toom.db in a temporary directory, or a fresh database on the test file's
 * throwaway PostgreSQL server), and the durable ones as places a store can be closed and opened
 * again on (a restart). All are disposable, so a failing test still closes every database it
 * opened and removes its directory.
 */
import { DatabaseSync } from "node:sqlite";
import postgres from "postgres";
import { MemoryFiles } from "../lib/server/files.ts";
import { HashPool } from "../lib/server/hash_pool.ts";
import { memoryStorage, type Storage } from "../lib/server/store/journal.ts";
import { openPostgresStorage } from "../lib/server/store/postgres.ts";
import { DATABASE_FILE, openSqliteStorage } from "../lib/server/store/sqlite.ts";
import { buildStore, type Store, type StoreConfig } from "../lib/server/store/store.ts";
import { FakeClock } from "../lib/shared/clock.ts";
import { type Logger, MemoryLogger } from "../lib/shared/logger.ts";
import { postgresAvailable, sharedPostgres } from "./postgres.ts";
import { CREDENTIALS } from "./server_fixture.ts";
import { tempDir } from "./temp_dir.ts";

/** Whether this run may read and write files (toom.db needs both). */
export const CAN_TOUCH_FILES = (["read", "write"] as const).every((name) =>
  Deno.permissions.querySync({ name }).state === "granted"
);

/**
 * Options for a test on toom.db: ignored, with a one-line hint (printed once per file that asks),
 * when the run may not read and write files.
 */
export function sqliteTests(what: string): { ignore: boolean } {
  if (!CAN_TOUCH_FILES) {
    console.log(`(${what} ignored: they need --allow-read --allow-write; run \`deno task test\`)`);
  }
  return { ignore: !CAN_TOUCH_FILES };
}

/** What a test store is built with; everything has a default. */
export interface TestStoreOptions {
  clock?: FakeClock;
  /** Default: memory files holding the sample credentials.txt. */
  files?: MemoryFiles;
  /** Config fields that win over the defaults (3 failures, 10 s lockout, a cheap hash). */
  config?: Partial<StoreConfig>;
}

/** A store with what it was built on. `close()` (or disposal) closes it and its hash pool. */
export interface TestStore extends AsyncDisposable {
  store: Store;
  storage: Storage;
  files: MemoryFiles;
  clock: FakeClock;
  logger: MemoryLogger;
  /** The current text of a file the store keeps ("" if absent). */
  file(name: "credentials.txt" | "messagelog.txt" | "userlog.txt"): string;
  close(): Promise<void>;
}

/** Builds a store over `storage`, memory files and a fake clock. */
export function testStore(storage: Storage, options: TestStoreOptions = {}): TestStore {
  const clock = options.clock ?? new FakeClock();
  const files = options.files ?? new MemoryFiles();
  if (!options.files) files.contents.set("credentials.txt", CREDENTIALS);
  const logger = new MemoryLogger();
  const pool = new HashPool();
  const store = buildStore(storage, {
    files,
    clock,
    logger,
    credentialsPath: "credentials.txt",
    userLogPath: "userlog.txt",
    messageLogPath: "messagelog.txt",
    maxFailures: 3,
    blockDurationMs: 10_000,
    hashCost: { N: 1024, r: 8, p: 1 },
    pool,
    ...options.config,
  });
  let closing: Promise<void> | undefined;
  const close = () =>
    closing ??= (async () => {
      pool.close();
      await store.close();
    })();
  return {
    store,
    storage,
    files,
    clock,
    logger,
    file: (name) => files.contents.get(name) ?? "",
    close,
    [Symbol.asyncDispose]: close,
  };
}

/** A temporary directory for toom.db; disposing it closes every store opened in it. */
export interface StoreDir extends AsyncDisposable {
  /** The path of toom.db in it. */
  readonly path: string;
  /** Opens toom.db (on `options.clock`, or a fake clock of its own) and builds a store on it. */
  open(options?: TestStoreOptions): TestStore;
}

/** Makes a temporary directory for toom.db. */
export async function storeDir(): Promise<StoreDir> {
  const dir = await tempDir("toom_store_");
  const path = `${dir.path}/${DATABASE_FILE}`;
  const opened: TestStore[] = [];
  return {
    path,
    open(options = {}) {
      const clock = options.clock ?? new FakeClock();
      const store = testStore(openSqliteStorage(path, { clock }), { ...options, clock });
      opened.push(store);
      return store;
    },
    async [Symbol.asyncDispose]() {
      for (const store of opened) await store.close();
      await dir.remove();
    },
  };
}

/** A fresh database on the test file's PostgreSQL server; disposing it closes its stores. */
export interface StoreDatabase extends AsyncDisposable {
  /** Its URL. */
  readonly url: string;
  /** Opens a storage on it (on `options.clock`, or a fake clock of its own) and a store on that. */
  open(options?: TestStoreOptions): Promise<TestStore>;
}

/** Makes a fresh database on the test file's shared throwaway PostgreSQL server. */
export async function storeDatabase(): Promise<StoreDatabase> {
  const url = await (await sharedPostgres()).createDatabase();
  const opened: TestStore[] = [];
  return {
    url,
    async open(options = {}) {
      const clock = options.clock ?? new FakeClock();
      const store = testStore(await openPostgresStorage(url, { clock }), { ...options, clock });
      opened.push(store);
      return store;
    },
    async [Symbol.asyncDispose]() {
      for (const store of opened) await store.close();
    },
  };
}

/** The storages every store contract test runs against. */
export const STORAGES: ReadonlyArray<{
  name: string;
  ignore: boolean;
  /** A store on a fresh, empty storage of this kind. */
  make(options?: TestStoreOptions): Promise<TestStore>;
}> = [
  {
    name: "memory",
    ignore: false,
    make: (options) => Promise.resolve(testStore(memoryStorage(), options)),
  },
  {
    name: "sqlite",
    ignore: !CAN_TOUCH_FILES,
    async make(options) {
      const dir = await storeDir();
      try {
        const opened = dir.open(options);
        return { ...opened, [Symbol.asyncDispose]: () => dir[Symbol.asyncDispose]() };
      } catch (error) {
        await dir[Symbol.asyncDispose]();
        throw error;
      }
    },
  },
  {
    name: "postgres",
    ignore: !postgresAvailable(),
    async make(options) {
      const database = await storeDatabase();
      const opened = await database.open(options);
      return { ...opened, [Symbol.asyncDispose]: () => database[Symbol.asyncDispose]() };
    },
  },
];

/**
 * Where a durable storage keeps its data: toom.db in a temporary directory, or a fresh database.
 * Disposing it closes every store opened on it (and removes the directory).
 */
export interface DurablePlace extends AsyncDisposable {
  /** Opens a store on it (on `options.clock`, or a fake clock of its own); close it to restart. */
  open(options?: TestStoreOptions): Promise<TestStore>;
  /** Opens a bare storage on it, which the caller closes. */
  storage(options: { clock: FakeClock; logger?: Logger }): Promise<Storage>;
  /** The rows `sql` selects, read over a connection of its own. */
  rows(sql: string): Promise<Record<string, unknown>[]>;
}

/** A storage that keeps what a store holds across a restart. */
export interface DurableStorage {
  name: string;
  ignore: boolean;
  /** What a commit's error says when it writes a row that is there already. */
  duplicate: RegExp;
  /** The operator's warning when such a commit fails. */
  failedWrite: RegExp;
  /** A fresh, empty place of this kind. */
  make(): Promise<DurablePlace>;
}

/** The durable storages every restart test runs against: toom.db and PostgreSQL. */
export const DURABLE_STORAGES: readonly DurableStorage[] = [
  {
    name: "sqlite",
    ignore: !CAN_TOUCH_FILES,
    duplicate: /UNIQUE constraint failed/,
    failedWrite: /^Could not write .*toom\.db: .*UNIQUE constraint failed/,
    async make() {
      const dir = await storeDir();
      return {
        open: (options) => Promise.resolve(dir.open(options)),
        storage: (options) => Promise.resolve(openSqliteStorage(dir.path, options)),
        rows(sql) {
          const db = new DatabaseSync(dir.path, { readOnly: true });
          try {
            return Promise.resolve(db.prepare(sql).all().map((row) => ({ ...row })));
          } finally {
            db.close();
          }
        },
        [Symbol.asyncDispose]: () => dir[Symbol.asyncDispose](),
      };
    },
  },
  {
    name: "postgres",
    ignore: !postgresAvailable(),
    duplicate: /duplicate key value/,
    failedWrite: /^Could not write postgres:\/\/.*duplicate key value/,
    async make() {
      const database = await storeDatabase();
      return {
        open: (options) => database.open(options),
        storage: (options) => openPostgresStorage(database.url, options),
        rows: (sql) => queryPostgres(database.url, sql),
        [Symbol.asyncDispose]: () => database[Symbol.asyncDispose](),
      };
    },
  },
];

/** Runs `sql` on the database at `url` over a connection of its own, and returns the rows. */
export async function queryPostgres(url: string, sql: string): Promise<postgres.Row[]> {
  const connection = postgres(url, { max: 1, onnotice: () => {} });
  try {
    return [...await connection.unsafe(sql)];
  } finally {
    await connection.end();
  }
}
