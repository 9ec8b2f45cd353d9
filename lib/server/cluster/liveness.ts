/**
 * Which cluster nodes are alive (docs/CLUSTER.md, "a node dies"): each node registers a row in
 * `nodes` and holds a session advisory lock on a connection of its own for as long as it runs;
 * PostgreSQL drops the lock when that connection ends, however the node died. Every node runs a
 * watcher (liveness_watcher.ts) that looks for registered nodes whose lock is gone and reports
 * each one, once across the whole cluster, by deleting its row. A node that loses its own
 * connection notices (its lock is gone) and says so, and, told to, takes its lock back once it
 * can (after a database restart), learning whether it was reported lost meanwhile.
 *
 * @module
 */
import postgres from "postgres";
import type { Logger } from "../../shared/logger.ts";
import { upgradeLayout } from "../store/pg_schema.ts";

/**
 * How long (seconds) each of a node's connections to the database waits to reach it: a database
 * gone silent is tried again soon, not after the client's default 30 s.
 */
export const CONNECT_TIMEOUT_S = 5;

/** The first key of every node lock (the two-key form of pg_advisory_lock): "toom" in ASCII. */
export const NODE_LOCK_SPACE = 0x746f6f6d;

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
   * Called each time the lease is lost: its connection closed (the database restarted or was
   * unreachable, or the connection was killed) or its lock is no longer held. Without
   * `reconnect` a lost lease is finished (acquire a new one with the same id to rejoin); with it,
   * the lease takes its lock back by itself.
   */
  onDisconnected?: (reason: string) => void;
  /** Gives the `started` time (wall clock, milliseconds since the epoch). */
  clock?: { now(): number };
  /**
   * Take the lock back after a loss, on a new connection, trying again after `firstMs` (default
   * 100 ms), doubling up to `maxMs` (default 1 s) for as long as it takes: well inside the
   * watchers' grace once the database is back.
   */
  reconnect?: {
    /**
     * Told each time the lease holds its lock again. `declaredLost`: its row was gone (a watcher
     * reported the node lost meanwhile), so it registered afresh, under a new key.
     */
    onRegained: (regained: { declaredLost: boolean }) => void;
    firstMs?: number;
    maxMs?: number;
    /** The timers between tries (default the real ones). */
    timers?: TickClock;
    /** Hears why a try failed, once per loss. */
    logger?: Logger;
  };
}

/** A node registered on a connection of its own: what {@linkcode register} gives. */
interface Registered {
  sql: postgres.Sql;
  key: number;
  rejoined: boolean;
}

/**
 * Opens a connection of its own to `url` and registers `node` on it: takes its row back if there
 * is one whose lock is free, else makes one, and takes its lock. `onClose` hears the connection
 * close once registered. Rejects if a live node holds the id or the connection closes first.
 */
async function register(
  url: string,
  node: NodeAddress,
  started: Date,
  onClose: () => void,
): Promise<Registered> {
  let registered = false;
  let closedEarly = false;
  const sql = postgres(url, {
    max: 1,
    connect_timeout: CONNECT_TIMEOUT_S,
    // The lock lives as long as this connection, so it must never be retired or idle out.
    max_lifetime: null,
    idle_timeout: 0,
    fetch_types: false,
    onnotice: () => {},
    onclose: () => {
      if (registered) onClose();
      else closedEarly = true;
    },
  });
  try {
    const held = await sql.begin(async (tx) => {
      // Row lock first: a watcher that is removing this row finishes before we look.
      const [row] = await tx`select key from nodes where id = ${node.id} for update`;
      if (row) {
        const [lock] = await tx`select pg_try_advisory_lock(${NODE_LOCK_SPACE}, ${row.key}) as got`;
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
    registered = true;
    return { sql, ...held };
  } catch (error) {
    await sql.end({ timeout: 0 });
    throw error;
  }
}

/**
 * One node's registration: its row in `nodes`, and its advisory lock held on a connection of its
 * own (never recycled, never shared) until {@linkcode NodeLease.release} or the node's death. With
 * `reconnect`, a lost lock is taken back on a new connection.
 */
export class NodeLease implements AsyncDisposable {
  readonly node: NodeAddress;
  readonly #url: string;
  readonly #options: LeaseOptions;
  /** The registration now: its connection, key, and whether it took back a row. */
  #held!: Registered;
  #state: "held" | "lost" | "away" | "released" = "held";
  #ending: Promise<void> | undefined;
  #timer: unknown;
  /** A try to take the lock back under way. */
  #trying: Promise<void> | undefined;

  private constructor(url: string, node: NodeAddress, options: LeaseOptions) {
    this.#url = url;
    this.node = { ...node };
    this.#options = options;
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
    const lease = new NodeLease(url, node, options);
    await lease.#register();
    return lease;
  }

  /** The second key of its lock (a new one after registering afresh). */
  get key(): number {
    return this.#held.key;
  }

  /**
   * False when the id was new, or its row had been removed because a watcher reported the node
   * lost; true when the node took back a row nobody had reported yet (as of its last taking).
   */
  get rejoined(): boolean {
    return this.#held.rejoined;
  }

  /** Whether the lease is held now, as far as the node knows. */
  get held(): boolean {
    return this.#state === "held";
  }

  /** Registers on a new connection whose close loses this registration. */
  async #register(): Promise<void> {
    const started = new Date((this.#options.clock ?? Date).now());
    const held: Registered = await register(this.#url, this.node, started, () => {
      if (this.#held === held) this.#lose("its PostgreSQL connection closed");
    });
    this.#held = held;
    this.#ending = undefined;
  }

  /**
   * Asks PostgreSQL whether this connection still holds the lock; if not, or if it cannot ask,
   * the lease is lost (and `onDisconnected` is called). Watchers call it on each tick.
   */
  async check(): Promise<boolean> {
    if (this.#state !== "held") return false;
    try {
      const [row] = await this.#held.sql`select exists (
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
    const result = await this.#held.sql`update nodes
      set last_seq = greatest(coalesce(last_seq, 0), ${seq})
      where id = ${this.node.id} and key = ${this.key}`;
    return result.count === 1;
  }

  /** Leaves the cluster cleanly: removes the row (so no one reports the node lost) and the lock. */
  async release(): Promise<void> {
    const wasHeld = this.#state === "held";
    this.#state = "released";
    (this.#options.reconnect?.timers ?? SYSTEM_TICK_CLOCK).clearTimeout(this.#timer);
    // A try under way gives back what it took (#retry sees the state).
    await this.#trying;
    if (wasHeld) await this.#removeRow();
    await this.#end();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.release();
  }

  async #removeRow(): Promise<void> {
    try {
      await this.#held.sql`delete from nodes where id = ${this.node.id} and key = ${this.key}`;
    } catch {
      // The row stays, with no lock: the others will report this node lost, which it is.
    }
  }

  #lose(reason: string): void {
    if (this.#state !== "held") return;
    const { reconnect } = this.#options;
    this.#state = reconnect ? "away" : "lost";
    // Close what is left, so PostgreSQL's view (no lock) and ours agree from now on.
    void this.#end();
    this.#options.onDisconnected?.(reason);
    if (reconnect) this.#schedule(reconnect.firstMs ?? 100, true);
  }

  /** Tries to take the lock back in `delayMs`. */
  #schedule(delayMs: number, first: boolean): void {
    const timers = this.#options.reconnect?.timers ?? SYSTEM_TICK_CLOCK;
    this.#timer = timers.setTimeout(() => {
      this.#trying = this.#retry(delayMs, first).finally(() => this.#trying = undefined);
    }, delayMs);
  }

  async #retry(delayMs: number, first: boolean): Promise<void> {
    const reconnect = this.#options.reconnect!;
    if (this.#state !== "away") return;
    try {
      await this.#end();
      await this.#register();
    } catch (error) {
      if (first) reconnect.logger?.warn(`Node ${this.node.id} cannot register yet: ${error}`);
      if (this.#state !== "away") return;
      return this.#schedule(Math.min(delayMs * 2, reconnect.maxMs ?? 1_000), false);
    }
    // Released while registering (the only way out of "away"): give back what was taken.
    if (this.#state !== "away") {
      await this.#removeRow();
      return;
    }
    this.#state = "held";
    reconnect.onRegained({ declaredLost: !this.#held.rejoined });
  }

  #end(): Promise<void> {
    return this.#ending ??= this.#held.sql.end({ timeout: 0 }).catch(() => {});
  }
}
