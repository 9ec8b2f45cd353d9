/**
 * A running node's upkeep of the change log (docs/CLUSTER.md, "Starting a node: checkpoints"), on
 * a tick of its TickClock: it reports how far its tail has applied the log (`nodes.last_seq`,
 * NodeLease.reportProgress), writes a checkpoint of its Store when the newest one is far enough
 * behind, and prunes what every registered node has passed and the newest checkpoint covers
 * (pruneUpTo). Every node does all three, and no node need: a checkpoint is idempotent per seq and
 * every node holds the same state at a seq, so two nodes writing at once write the same checkpoint
 * or two close ones, and two prunes delete the same rows once.
 *
 * A checkpoint is due when there is none yet and the log has entries (a node that loaded the
 * tables, a database's first or one upgraded from a single server's, thus writes one as it
 * starts, and no later node replays a log that does not reach back to the beginning), when the log has grown by
 * `checkpointEntries` since the newest, or when `checkpointAfterMs` have passed, as this node's
 * clock sees it, since the newest appeared and the log has grown since.
 *
 * @module
 */
import type postgres from "postgres";
import type { Logger } from "../../shared/logger.ts";
import type { Store } from "../store/store.ts";
import { pruneUpTo } from "./change_log.ts";
import { DEFAULT_CHECKPOINTS_KEPT, newestCheckpointSeq, writeCheckpoint } from "./checkpoint.ts";
import type { TickClock } from "./liveness.ts";

/** How often a node reports its progress, and looks at checkpoints and pruning, by default. */
export const DEFAULT_UPKEEP_INTERVAL_MS = 5_000;
/** How many entries past the newest checkpoint make a new one due, by default. */
export const DEFAULT_CHECKPOINT_ENTRIES = 1_000;
/** How long after the newest checkpoint a log that has grown at all makes a new one due. */
export const DEFAULT_CHECKPOINT_AFTER_MS = 60_000;

/** How often, and after how much, a node does its upkeep (every field has a default). */
export interface UpkeepOptions {
  /** Time between ticks (default 5 s). */
  intervalMs?: number;
  /** Entries past the newest checkpoint that make a new one due (default 1000). */
  checkpointEntries?: number;
  /** Time since the newest checkpoint after which any new entry makes one due (default 60 s). */
  checkpointAfterMs?: number;
  /** Checkpoints kept (default 3). */
  checkpointsKept?: number;
}

/** What a node's upkeep works on. */
export interface UpkeepParts {
  /** A pool on the cluster's database, kept by the caller. */
  sql: postgres.Sql;
  /** This node's id, as the checkpoints it writes name it. */
  node: string;
  /** The node's Store, which its Sequencer follows the log into. */
  store: Store;
  /**
   * The seq of the last entry applied to `store` (Sequencer.lastSeq). It must agree with the store
   * whenever it is read outside the tail's applying: an entry's state changes synchronously, as
   * the tail sets the seq (a promise it returns is only for files), so it does.
   */
  appliedSeq(): number;
  /** Records the node's progress (NodeLease.reportProgress); false if its registration is gone. */
  report(seq: number): Promise<boolean>;
  clock: TickClock;
  logger: Logger;
}

/** What one tick did. */
export interface UpkeepTick {
  /** The seq reported, if the report went through. */
  reported: number | undefined;
  /** The seq a checkpoint was written at, if this tick wrote one. */
  checkpoint: number | undefined;
  /** Up to where the log was pruned (undefined: nothing could be), and how many entries went. */
  pruned: { upTo: number | undefined; deleted: number };
}

/** Reports progress, writes checkpoints and prunes the log, every interval until stopped. */
export class Upkeep {
  readonly #parts: UpkeepParts;
  readonly #intervalMs: number;
  readonly #entries: number;
  readonly #afterMs: number;
  readonly #keep: number;
  /** The newest checkpoint's seq as last seen, and when this node first saw it. */
  #newest: { seq: number | undefined; since: number };
  #timer: unknown;
  #ticking: Promise<unknown> | undefined;
  #stopped = true;
  #failing = false;

  /** An upkeep over `parts`; {@linkcode start} sets it going. */
  constructor(parts: UpkeepParts, options: UpkeepOptions = {}) {
    this.#parts = parts;
    this.#intervalMs = options.intervalMs ?? DEFAULT_UPKEEP_INTERVAL_MS;
    this.#entries = Math.max(1, options.checkpointEntries ?? DEFAULT_CHECKPOINT_ENTRIES);
    this.#afterMs = options.checkpointAfterMs ?? DEFAULT_CHECKPOINT_AFTER_MS;
    this.#keep = options.checkpointsKept ?? DEFAULT_CHECKPOINTS_KEPT;
    this.#newest = { seq: undefined, since: parts.clock.now() };
  }

  /**
   * Ticks now, then every interval: the node reports the seq it starts at at once (until it does,
   * pruning waits for it), and a node that loaded the tables checkpoints them at once if no
   * checkpoint exists.
   */
  start(): void {
    if (!this.#stopped) return;
    this.#stopped = false;
    this.#run();
  }

  /** Stops ticking; waits for a tick under way. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#parts.clock.clearTimeout(this.#timer);
    await this.#ticking;
  }

  /** Ticks, then schedules the next tick an interval after this one ends. */
  #run(): void {
    this.#ticking = this.tick().finally(() => {
      this.#ticking = undefined;
      if (this.#stopped) return;
      this.#timer = this.#parts.clock.setTimeout(() => this.#run(), this.#intervalMs);
    });
  }

  /**
   * Does the upkeep once: reports progress, writes a checkpoint if one is due, prunes. Never
   * rejects: a failure is logged (once per run of failures) and the next tick tries again.
   */
  async tick(): Promise<UpkeepTick | undefined> {
    try {
      const done = await this.#upkeep();
      if (this.#failing) this.#parts.logger.warn("Upkeep of the change log works again");
      this.#failing = false;
      return done;
    } catch (error) {
      this.#failed(error);
      return undefined;
    }
  }

  async #upkeep(): Promise<UpkeepTick> {
    const { sql, store, node, clock } = this.#parts;
    const applied = this.#parts.appliedSeq();
    const reported = (await this.#parts.report(applied)) ? applied : undefined;
    const newest = await newestCheckpointSeq(sql);
    if (newest !== this.#newest.seq) this.#newest = { seq: newest, since: clock.now() };
    let checkpoint: number | undefined;
    if (this.#due()) {
      // Read with no await before writeCheckpoint takes the store's contents: they agree.
      const seq = this.#parts.appliedSeq();
      await writeCheckpoint(sql, store, seq, node, { keep: this.#keep });
      checkpoint = seq;
      this.#newest = { seq, since: clock.now() };
    }
    return { reported, checkpoint, pruned: await pruneUpTo(sql) };
  }

  /** Whether a checkpoint is due now (see this module's comment). */
  #due(): boolean {
    const applied = this.#parts.appliedSeq();
    const { seq, since } = this.#newest;
    if (seq === undefined) return applied > 0;
    if (applied <= seq) return false;
    return applied - seq >= this.#entries || this.#parts.clock.now() - since >= this.#afterMs;
  }

  #failed(error: unknown): void {
    if (this.#failing) return;
    this.#failing = true;
    const reason = error instanceof Error ? error.message : String(error);
    this.#parts.logger.warn(`Upkeep of the change log failed (tried again later): ${reason}`);
  }
}
