/**
 * Nodes below the server, for tests of the change log: each a Store (store_fixture.ts) on one
 * PostgreSQL database, following the log with a Sequencer (lib/server/cluster/sequencer.ts) on a
 * pool and a bus of its own; an admin pool to read the log; everything closed together, the last
 * opened first.
 */
import postgres from "postgres";
import { readLastSeq } from "../lib/server/cluster/change_log.ts";
import { PostgresBus } from "../lib/server/cluster/postgres_bus.ts";
import { Sequencer } from "../lib/server/cluster/sequencer.ts";
import { openPostgresStorage } from "../lib/server/store/postgres.ts";
import { FakeClock } from "../lib/shared/clock.ts";
import { eventually } from "./eventually.ts";
import { sharedPostgres } from "./postgres.ts";
import { type TestStore, testStore } from "./store_fixture.ts";

/** A store following the log. */
export type SequencedNode = TestStore & { sequencer: Sequencer };

/** Sequenced nodes on one fresh database. */
export interface SequencedNodes extends AsyncDisposable {
  url: string;
  /** A pool for the test's own queries. */
  admin: postgres.Sql;
  /**
   * Starts `opened` and has it follow the log after `after` as node `id` (its own Changes passed
   * over if `ownChanges`).
   */
  follow(
    id: string,
    opened: TestStore,
    after: number,
    ownChanges?: boolean,
  ): Promise<SequencedNode>;
  /** A node `id` on the database's tables at their seq, with `options` for its store. */
  node(id: string, options?: Parameters<typeof testStore>[1]): Promise<SequencedNode>;
  /** Waits until every node given has applied the whole log. */
  caughtUp(...nodes: SequencedNode[]): Promise<void>;
  /** Runs `close` when the nodes are closed (before what was opened earlier). */
  defer(close: () => Promise<void>): void;
}

/** A fresh database of the file's shared PostgreSQL server, and a way to put nodes on it. */
export async function sequencedNodes(): Promise<SequencedNodes> {
  const url = await (await sharedPostgres()).createDatabase();
  const closers: Array<() => Promise<void>> = [];
  const admin = postgres(url, { max: 2, onnotice: () => {} });
  closers.push(() => admin.end({ timeout: 5 }));
  const follow = async (id: string, opened: TestStore, after: number, ownChanges = false) => {
    closers.push(() => opened.close());
    await opened.store.start();
    const sql = postgres(url, { max: 4, onnotice: () => {} });
    const bus = PostgresBus.connect(url);
    closers.push(async () => {
      await bus.close();
      await sql.end({ timeout: 5 });
    });
    const sequencer = new Sequencer(opened.store, {
      sql,
      bus,
      node: id,
      after,
      ...(ownChanges ? { ownChanges: id } : {}),
    });
    closers.push(() => sequencer.stop());
    await sequencer.start();
    return Object.assign(opened, { sequencer });
  };
  return {
    url,
    admin,
    follow,
    async node(id, options = {}) {
      const clock = options.clock ?? new FakeClock();
      const storage = await openPostgresStorage(url, { clock, atSeq: true, connectTimeout: 2 });
      return await follow(id, testStore(storage, { ...options, clock }), storage.seq ?? 0);
    },
    defer(close) {
      closers.push(close);
    },
    async caughtUp(...nodes) {
      await eventually("the nodes at the end of the log", async () => {
        const last = await readLastSeq(admin);
        return nodes.every((node) => node.sequencer.lastSeq === last);
      });
    },
    async [Symbol.asyncDispose]() {
      for (const close of closers.reverse()) await close();
    },
  };
}
