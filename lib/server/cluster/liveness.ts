/**
 * Which cluster nodes are alive (docs/CLUSTER.md, "a node dies"): each node registers a row in
 * `nodes` and holds a session advisory lock on a connection of its own for as long as it runs;
 * PostgreSQL drops the lock when that connection ends, however the node died. Every node runs a
 * watcher that looks for registered nodes whose lock is gone and reports each one, once across
 * the whole cluster, by deleting its row. A node that loses its own connection notices (its lock
 * is gone) and says so, so that it can refuse what needs the store until it is back.
 *
 * @module
 */
import postgres from "postgres";
import type { Logger } from "../../shared/logger.ts";
import { upgradeLayout } from "../store/pg_schema.ts";

/** The first key of every node lock (the two-key form of pg_advisory_lock): "toom" in ASCII. */
export const NODE_LOCK_SPACE = 0x746f6f6d;

/** How often a watcher looks, unless told otherwise. */
export const DEFAULT_WATCH_INTERVAL_MS = 2_000;

/** Time and timers, injected so tests decide when a watcher ticks. */
export interface TickClock {
  /** Milliseconds on a monotonic scale. */
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** The real clock and timers. */
export const SYSTEM_TICK_CLOCK: TickClock = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as number),
};

/** Who a node is and where its users connect. */
export interface NodeAddress {
  /** Unique among live nodes; the same id may rejoin after losing its connection. */
  id: string;
  host: string;
  port: number;
}

/** A registered node, as the `nodes` table has it. */
export interface NodeRow extends NodeAddress {
  /** The second key of its advisory lock. */
  key: number;
  started: Date;
  /** The last change-log seq it reported having applied (reportProgress); null before any. */
  lastSeq: number | null;
}

/**
 * Creates the `nodes` table unless it exists, by bringing the database's layout up to date
 * (pg_schema.ts, of which the table is part, as a storage opening the database does); safe when
 * several nodes start at once. Throws StorageError for a layout newer than this server's.
 */
export async function createNodesTable(sql: postgres.Sql): Promise<void> {
  await sql.begin((tx) => upgradeLayout(tx, "the cluster's database"));
}

/** Every registered node, oldest first. */
export async function listNodes(sql: postgres.Sql): Promise<NodeRow[]> {
  const rows = await sql`select id, key, host, port, started, last_seq from nodes order by key`;
  return rows.map((row) => ({
    id: row.id as string,
    key: row.key as number,
    host: row.host as string,
    port: row.port as number,
    started: row.started as Date,
    // bigint comes back as text.
    lastSeq: row.last_seq === null ? null : Number(row.last_seq),
  }));
}

/** What a lease is told and told with. */
export interface LeaseOptions {
  /**
   * Called once if the lease is lost: its connection closed (the database restarted or was
   * unreachable, or the connection was killed) or its lock is no longer held. A lost lease is
   * finished; acquire a new one with the same id to rejoin.
   */
  onDisconnected?: (reason: string) => void;
  /** Gives the `started` time (wall clock, milliseconds since the epoch). */
  clock?: { now(): number };
}

/**
 * One node's registration: its row in `nodes`, and its advisory lock held on a connection of its
 * own (never recycled, never shared) until {@linkcode NodeLease.release} or the node's death.
 */
export class NodeLease implements AsyncDisposable {
  readonly node: NodeAddress;
  /** The second key of its lock. */
  readonly key: number;
  /**
   * False when the id was new, or its row had been removed because a watcher reported the node
   * lost; true when the node took back a row nobody had reported yet.
   */
  readonly rejoined: boolean;
  readonly #sql: postgres.Sql;
  readonly #onDisconnected: ((reason: string) => void) | undefined;
  #state: "held" | "lost" | "released" = "held";
  #ending: Promise<void> | undefined;

  private constructor(
    sql: postgres.Sql,
    node: NodeAddress,
    held: { key: number; rejoined: boolean },
    options: LeaseOptions,
  ) {
    this.#sql = sql;
    this.node = { ...node };
    this.key = held.key;
    this.rejoined = held.rejoined;
    this.#onDisconnected = options.onDisconnected;
  }

  /**
   * Registers `node` in the database at `url` (the `nodes` table must exist) and takes its lock.
   * Rejects if a live node holds the id.
   */
  static async acquire(
    url: string,
    node: NodeAddress,
    options: LeaseOptions = {},
  ): Promise<NodeLease> {
    let lease: NodeLease | undefined;
    let closedEarly = false;
    const sql = postgres(url, {
      max: 1,
      // The lock lives as long as this connection, so it must never be retired or idle out.
      max_lifetime: null,
      idle_timeout: 0,
      fetch_types: false,
      onnotice: () => {},
      onclose: () => {
        if (lease) lease.#lose("its PostgreSQL connection closed");
        else closedEarly = true;
      },
    });
    try {
      const started = new Date((options.clock ?? Date).now());
      const held = await sql.begin(async (tx) => {
        // Row lock first: a watcher that is removing this row finishes before we look.
        const [row] = await tx`select key from nodes where id = ${node.id} for update`;
        if (row) {
          const [lock] =
            await tx`select pg_try_advisory_lock(${NODE_LOCK_SPACE}, ${row.key}) as got`;
          if (!lock?.got) {
            throw new Error(`Cannot register node ${node.id}: a live node has that id`);
          }
          await tx`update nodes set host = ${node.host}, port = ${node.port}, started = ${started}
            where id = ${node.id}`;
          return { key: row.key as number, rejoined: true };
        }
        const [made] = await tx`insert into nodes (id, host, port, started)
          values (${node.id}, ${node.host}, ${node.port}, ${started}) returning key`;
        // Taken before the commit that makes the row visible, so no one sees the row unlocked.
        await tx`select pg_advisory_lock(${NODE_LOCK_SPACE}, ${made!.key})`;
        return { key: made!.key as number, rejoined: false };
      });
      // A close seen now came after the lock was taken (a failed connection fails the query).
      if (closedEarly) {
        throw new Error(`Cannot register node ${node.id}: its connection closed while registering`);
      }
      lease = new NodeLease(sql, node, held, options);
      return lease;
    } catch (error) {
      await sql.end({ timeout: 0 });
      throw error;
    }
  }

  /** Whether the lease is still held, as far as the node knows. */
  get held(): boolean {
    return this.#state === "held";
  }

  /**
   * Asks PostgreSQL whether this connection still holds the lock; if not, or if it cannot ask,
   * the lease is lost (and `onDisconnected` is called). Watchers call it on each tick.
   */
  async check(): Promise<boolean> {
    if (this.#state !== "held") return false;
    try {
      const [row] = await this.#sql`select exists (
        select 1 from pg_locks where locktype = 'advisory' and granted and pid = pg_backend_pid()
          and classid::bigint = ${NODE_LOCK_SPACE} and objid::bigint = ${this.key}
          and objsubid = 2
      ) as held`;
      if (!row?.held) this.#lose("its lock is no longer held");
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      this.#lose(`its PostgreSQL connection failed (${reason})`);
    }
    return this.#state === "held";
  }

  /**
   * Records in the node's row that it has applied every change up to `seq`, so that pruning
   * (pruneUpTo in change_log.ts) may delete them; a seq lower than one reported before changes
   * nothing. Report the seq loaded at as soon as the node has loaded (it holds pruning back until
   * it does), then its tail's `lastSeq` from time to time. Resolves false if the lease is not
   * held or its row is gone (the node was reported lost); rejects if the database cannot be asked.
   */
  async reportProgress(seq: number): Promise<boolean> {
    if (this.#state !== "held") return false;
    const result = await this.#sql`update nodes
      set last_seq = greatest(coalesce(last_seq, 0), ${seq})
      where id = ${this.node.id} and key = ${this.key}`;
    return result.count === 1;
  }

  /** Leaves the cluster cleanly: removes the row (so no one reports the node lost) and the lock. */
  async release(): Promise<void> {
    if (this.#state === "held") {
      this.#state = "released";
      try {
        await this.#sql`delete from nodes where id = ${this.node.id} and key = ${this.key}`;
      } catch {
        // The row stays, with no lock: the others will report this node lost, which it is.
      }
    }
    await this.#end();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.release();
  }

  #lose(reason: string): void {
    if (this.#state !== "held") return;
    this.#state = "lost";
    // Close what is left, so PostgreSQL's view (no lock) and ours agree from now on.
    void this.#end();
    this.#onDisconnected?.(reason);
  }

  #end(): Promise<void> {
    return this.#ending ??= this.#sql.end({ timeout: 0 }).catch(() => {});
  }
}

/** What a watcher does and how often. */
export interface WatcherOptions {
  /** Told of each lost node, once across all watchers of the cluster. */
  onLost: (nodeId: string) => void;
  /** This node's lease: checked on each tick, and its node is never reported. */
  lease?: NodeLease;
  /** How long a node's lock must be seen missing before it is reported (default 0). */
  graceMs?: number;
  /** Time between ticks (default 2 s). */
  intervalMs?: number;
  clock?: TickClock;
  /** Hears when looking fails (once per run of failures) and of `onLost` throwing. */
  logger?: Logger;
}

/**
 * Looks for registered nodes whose lock is gone and reports them. Exactly one watcher reports
 * each lost node: a watcher locks the candidate rows (`FOR UPDATE SKIP LOCKED`, so two watchers
 * never look at the same row at once), checks their locks only then, and deletes the rows of the
 * lost ones in the same transaction; it reports them after the commit.
 */
export class LivenessWatcher {
  readonly #sql: postgres.Sql;
  readonly #options: WatcherOptions;
  readonly #clock: TickClock;
  readonly #intervalMs: number;
  /** When this watcher first saw each unlocked node, for the grace period. */
  readonly #missingSince = new Map<string, number>();
  #timer: unknown;
  #ticking: Promise<unknown> | undefined;
  #stopped = true;
  #failing = false;

  /** A watcher over `sql`, a pool the caller keeps; {@linkcode start} sets it ticking. */
  constructor(sql: postgres.Sql, options: WatcherOptions) {
    this.#sql = sql;
    this.#options = options;
    this.#clock = options.clock ?? SYSTEM_TICK_CLOCK;
    this.#intervalMs = options.intervalMs ?? DEFAULT_WATCH_INTERVAL_MS;
  }

  /** Ticks every interval until {@linkcode stop}, the first tick one interval from now. */
  start(): void {
    if (!this.#stopped) return;
    this.#stopped = false;
    this.#schedule();
  }

  /** Stops ticking; waits for a tick under way. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#clock.clearTimeout(this.#timer);
    await this.#ticking;
  }

  #schedule(): void {
    this.#timer = this.#clock.setTimeout(() => {
      this.#ticking = this.tick().finally(() => {
        this.#ticking = undefined;
        if (!this.#stopped) this.#schedule();
      });
    }, this.#intervalMs);
  }

  /**
   * Looks once: checks this node's own lease, then reports the nodes found lost. Returns their
   * ids. Never rejects; a failure to look is logged and retried next tick.
   */
  async tick(): Promise<string[]> {
    const { lease } = this.#options;
    // A node that has lost its own lock is out of the cluster; it has nothing to say of others.
    if (lease && !(await lease.check())) return [];
    let lost: string[];
    try {
      lost = await this.#sweep(lease?.node.id);
      if (this.#failing) this.#options.logger?.warn("Looking for lost nodes works again");
      this.#failing = false;
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      if (!this.#failing) this.#options.logger?.warn(`Could not look for lost nodes: ${reason}`);
      this.#failing = true;
      return [];
    }
    for (const id of lost) {
      try {
        this.#options.onLost(id);
      } catch (error) {
        const reason = error instanceof Error ? error.message : String(error);
        this.#options.logger?.warn(`Reporting node ${id} lost failed: ${reason}`);
      }
    }
    return lost;
  }

  /** Removes the rows of nodes whose lock is gone (past the grace period); returns their ids. */
  #sweep(self: string | undefined): Promise<string[]> {
    return this.#sql.begin(async (tx) => {
      const candidates = await tx`select id, key from nodes
        where id <> ${self ?? ""} for update skip locked`;
      // Forget nodes no longer here (or being looked at by another watcher just now).
      const present = new Set(candidates.map((row) => row.id as string));
      for (const id of this.#missingSince.keys()) {
        if (!present.has(id)) this.#missingSince.delete(id);
      }
      if (candidates.length === 0) return [];
      // Read after the row locks are ours: a node rejoining waits on them, so what we see holds.
      const locks = await tx`select objid::bigint as key from pg_locks
        where locktype = 'advisory' and granted and objsubid = 2
          and classid::bigint = ${NODE_LOCK_SPACE}
          and database = (select oid from pg_database where datname = current_database())`;
      const held = new Set(locks.map((row) => Number(row.key)));
      const now = this.#clock.now();
      const graceMs = this.#options.graceMs ?? 0;
      const lost: string[] = [];
      for (const { id, key } of candidates) {
        if (held.has(key as number)) {
          this.#missingSince.delete(id);
          continue;
        }
        const since = this.#missingSince.get(id) ?? now;
        this.#missingSince.set(id, since);
        if (now - since >= graceMs) lost.push(id as string);
      }
      if (lost.length === 0) return [];
      const gone = await tx`delete from nodes where id in ${tx(lost)} returning id`;
      for (const id of lost) this.#missingSince.delete(id);
      return gone.map((row) => row.id as string);
    });
  }
}
