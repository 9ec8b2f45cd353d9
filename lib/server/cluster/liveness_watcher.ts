/**
 * The liveness watcher (docs/CLUSTER.md, "a node dies"): every node runs one, which looks every
 * few seconds for registered nodes (liveness.ts) whose lock is gone and reports each one, once
 * across the whole cluster, by deleting its row.
 *
 * @module
 */
import type postgres from "postgres";
import type { Logger } from "../../shared/logger.ts";
import { NODE_LOCK_SPACE, type NodeLease, SYSTEM_TICK_CLOCK, type TickClock } from "./liveness.ts";

/** How often a watcher looks, unless told otherwise. */
export const DEFAULT_WATCH_INTERVAL_MS = 2_000;

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
