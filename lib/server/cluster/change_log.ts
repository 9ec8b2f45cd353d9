/**
 * The cluster's change log (docs/CLUSTER.md): one PostgreSQL table `changes` in which every
 * change to shared state gets its place, `seq`, and which every node follows in `seq` order.
 *
 * - {@linkcode appendChanges} runs inside the transaction that writes the changes to the other
 *   tables (the PostgreSQL storage does it on every commit when opened with `logChangesAs`) and
 *   sends one NOTIFY on {@linkcode CHANGES_CHANNEL} with the last `seq`, which PostgreSQL
 *   delivers only once the transaction has committed.
 * - {@linkcode ChangeTail} follows the log from a given `seq` and hands each change on once, in
 *   order, waking on those notifications and on a failsafe timer.
 * - {@linkcode readLastSeq} says where the log is, even once pruning has emptied it: every append
 *   also sets `change_log_state.last_seq`, in the same statement.
 * - {@linkcode pruneUpTo} deletes what every registered node has passed and the newest checkpoint
 *   covers ({@linkcode pruneChanges} deletes up to a seq given); nodes report how far they are
 *   with NodeLease.reportProgress, and write checkpoints with checkpoint.ts (a running node does
 *   both, and prunes, on its upkeep's tick: upkeep.ts).
 *
 * `seq` order is commit order: appending takes a transaction-level advisory lock, so appending
 * transactions take their numbers one after another and commit in that order. Without it, a
 * transaction could take seq 5, commit after another one's seq 6, and a node that had read 6
 * would never read 5.
 *
 * @module
 */
import type postgres from "postgres";
import type { Logger } from "../../shared/logger.ts";
import type { Change } from "../store/journal.ts";
import type { ProposalEntry } from "./proposals.ts";
import type { Bus, Unsubscribe } from "./bus.ts";
import { SYSTEM_TICK_CLOCK, type TickClock } from "./liveness.ts";
import { notifyInTransaction } from "./postgres_bus.ts";

/** The channel on which each appending transaction announces its last `seq`, at commit. */
export const CHANGES_CHANNEL = "toom_changes";

/**
 * The advisory lock key (single-key form) held by an appending transaction until it ends: 'TOOML'
 * in ASCII, apart from the layout lock ('TOOM') and the node locks (two-key form).
 */
export const CHANGE_LOG_LOCK = 0x544f4f4d4c;

/** How often a tail reads the log when no notification woke it, unless told otherwise. */
export const DEFAULT_TAIL_INTERVAL_MS = 1_000;

/** How many changes a tail reads at a time, unless told otherwise. */
export const DEFAULT_TAIL_BATCH = 100;

/**
 * What the log's `change` column holds: a Change a storage committed, or a proposal
 * (lib/server/cluster/proposals.ts) that every node decides when it applies it.
 */
export type LogEntry = Change | ProposalEntry;

/** One entry of the log. */
export interface LoggedChange {
  seq: number;
  /** The node whose commit appended it. */
  node: string;
  change: LogEntry;
}

/**
 * Appends `changes`, in order, to the log as node `node`'s, inside the transaction `tx`, and
 * queues one notification on {@linkcode CHANGES_CHANNEL} carrying the last `seq`. Returns that
 * `seq`, or undefined for no changes (nothing is appended or sent). Holds
 * {@linkcode CHANGE_LOG_LOCK} until `tx` ends, so call it last in the transaction: other nodes'
 * appends wait for the commit.
 */
export async function appendChanges(
  tx: postgres.TransactionSql,
  node: string,
  changes: readonly LogEntry[],
): Promise<number | undefined> {
  if (changes.length === 0) return undefined;
  // Sent as text: given as jsonb, the driver would encode the JSON text again, as a string.
  const given = JSON.stringify(changes);
  // Sent together; the lock is granted before the insert takes its numbers.
  const [, rows] = await Promise.all([
    tx.unsafe(`select pg_advisory_xact_lock(${CHANGE_LOG_LOCK})`),
    tx`with added as (
        insert into changes (node, change)
        select ${node}, value
          from jsonb_array_elements(${given}::text::jsonb) with ordinality as given (value, n)
          order by n
        returning seq
      ), kept as (
        update change_log_state set last_seq = (select max(seq) from added)
      )
      select seq from added`,
  ]);
  // bigint comes back as text.
  const last = Math.max(...rows.map((row) => Number(row.seq)));
  await notifyInTransaction(tx, CHANGES_CHANNEL, String(last));
  return last;
}

/**
 * The seq of the last committed change (0 if none ever was), as `sql`'s snapshot has it; right
 * after pruning has emptied the log too.
 */
export async function readLastSeq(sql: postgres.Sql | postgres.TransactionSql): Promise<number> {
  const [row] = await sql`select last_seq from change_log_state`;
  // bigint comes back as text.
  return Number(row?.last_seq ?? 0);
}

/** The first `limit` entries after `after`, in `seq` order. */
export async function readChanges(
  sql: postgres.Sql,
  after: number,
  limit: number,
): Promise<LoggedChange[]> {
  const rows = await sql`select seq, node, change::text as change from changes
    where seq > ${after} order by seq limit ${limit}`;
  return rows.map((row) => ({
    seq: Number(row.seq),
    node: row.node as string,
    change: JSON.parse(row.change as string) as LogEntry,
  }));
}

/**
 * Deletes the entries up to and including `upTo`; returns how many went. The caller decides
 * `upTo`: at most the `lastSeq` of every live node's tail (a node that starts later loads the
 * tables and follows the log from the `seq` they reflect, so it needs nothing older). A tail still
 * behind `upTo` would miss what was deleted without knowing it.
 */
export async function pruneChanges(sql: postgres.Sql, upTo: number): Promise<number> {
  // change_log_state.pruned_up_to says from then on that the log alone no longer starts a node.
  const [row] = await sql`with gone as (
      delete from changes where seq <= ${upTo} returning seq
    ), noted as (
      update change_log_state set pruned_up_to = greatest(pruned_up_to, (select max(seq) from gone))
      where exists (select 1 from gone)
    )
    select count(*) as n from gone`;
  return Number(row?.n ?? 0);
}

/**
 * How far checkpoints let the log be pruned (lib/server/cluster/checkpoint.ts): up to the newest
 * checkpoint's seq, since a node starts from it and replays the log after it; with no checkpoint,
 * nothing once the log holds a proposal (a node then replays the whole log: what proposals decided
 * is in no other table); with neither, no limit (undefined): the tables are the whole story.
 */
export async function checkpointLimit(sql: postgres.Sql): Promise<number | undefined> {
  const [row] = await sql`select (select max(seq) from snapshots) as newest,
    exists (select 1 from changes where change->>'t' = 'proposal') as proposals`;
  if (row?.newest !== null && row?.newest !== undefined) return Number(row.newest);
  return row?.proposals ? 0 : undefined;
}

/**
 * The largest seq every registered node (the `nodes` table, liveness.ts) has passed: the least
 * `last_seq` reported. Undefined when no node is registered or one has not reported yet (a node
 * registers before it loads, and reports the seq it loaded at, so until then it may need
 * anything). A lost node's row is removed by the watcher that reports it, and stops holding
 * pruning back then.
 */
export async function passedByAll(sql: postgres.Sql): Promise<number | undefined> {
  const [row] = await sql`select min(last_seq) as up_to from nodes
    having count(*) > 0 and count(last_seq) = count(*)`;
  return row ? Number(row.up_to) : undefined;
}

/**
 * Deletes what every registered node has passed ({@linkcode passedByAll}) and checkpoints let go
 * ({@linkcode checkpointLimit}); returns up to where (undefined: nothing could be) and how many
 * entries went. Safe against a node registering meanwhile: what it loads (a checkpoint, or the
 * tables) reflects every change it does not find in the log, since `last_seq` values are seqs
 * already committed before it loads, and no checkpoint newer than the one it loads is passed.
 */
export async function pruneUpTo(
  sql: postgres.Sql,
): Promise<{ upTo: number | undefined; deleted: number }> {
  const [passed, limit] = await Promise.all([passedByAll(sql), checkpointLimit(sql)]);
  const upTo = passed === undefined || limit === undefined ? passed : Math.min(passed, limit);
  if (upTo === undefined || upTo <= 0) return { upTo: undefined, deleted: 0 };
  return { upTo, deleted: await pruneChanges(sql, upTo) };
}

/** What a tail hands on, from where, and how often it looks. */
export interface ChangeTailOptions {
  /**
   * Takes each change after `after`, once, in `seq` order; never called again before the
   * promise it returns settles. A call that throws or rejects is logged, and the change counts
   * as handed on (the tail does not stop on it or hand it on again).
   */
  onChange: (seq: number, node: string, change: LogEntry) => void | Promise<void>;
  /** The last `seq` already applied: the tail starts after it. Default 0 (the whole log). */
  after?: number;
  /** A node whose changes are passed over (not handed on; `lastSeq` still moves past them). */
  skipNode?: string;
  /** How many changes to read at a time (default 100). */
  batchSize?: number;
  /** The failsafe: read this often even without a notification (default 1 s). */
  intervalMs?: number;
  clock?: TickClock;
  /** Hears when reading fails (once per run of failures) and of `onChange` failing. */
  logger?: Logger;
}

/**
 * Follows the change log: reads `changes WHERE seq > lastSeq ORDER BY seq` when a notification
 * says there is more, when the bus is subscribed again after losing its connection (a database
 * restart), and on a failsafe timer; hands each change to `onChange` in order, one at a time.
 * Reading that fails (the database is away) is retried on the next wake, from the same place, so
 * nothing is lost or handed on twice.
 */
export class ChangeTail {
  readonly #sql: postgres.Sql;
  readonly #bus: Bus;
  readonly #options: ChangeTailOptions;
  readonly #clock: TickClock;
  readonly #intervalMs: number;
  readonly #batchSize: number;
  #lastSeq: number;
  #unsubscribe: Unsubscribe | undefined;
  #timer: unknown;
  #stopped = true;
  /** Whether to read (again) once the read under way is done. */
  #again = false;
  /** The reading and handing on under way, if any. */
  #running: Promise<void> | undefined;
  #failing = false;

  /**
   * A tail reading through `sql` and woken through `bus`, both kept by the caller;
   * {@linkcode start} sets it going.
   */
  constructor(sql: postgres.Sql, bus: Bus, options: ChangeTailOptions) {
    this.#sql = sql;
    this.#bus = bus;
    this.#options = options;
    this.#clock = options.clock ?? SYSTEM_TICK_CLOCK;
    this.#intervalMs = options.intervalMs ?? DEFAULT_TAIL_INTERVAL_MS;
    this.#batchSize = options.batchSize ?? DEFAULT_TAIL_BATCH;
    this.#lastSeq = options.after ?? 0;
  }

  /** The `seq` of the last change handed on or passed over. */
  get lastSeq(): number {
    return this.#lastSeq;
  }

  /**
   * Subscribes to {@linkcode CHANGES_CHANNEL}, reads what is already there and starts the
   * failsafe timer. Rejects if the bus cannot subscribe.
   */
  async start(): Promise<void> {
    if (!this.#stopped) return;
    this.#stopped = false;
    try {
      this.#unsubscribe = await this.#bus.subscribe(CHANGES_CHANNEL, (payload) => {
        const seq = Number(payload);
        // Our own read may already have gone past it.
        if (Number.isSafeInteger(seq) && seq <= this.#lastSeq) return;
        this.#wake();
      }, { onSubscribed: () => this.#wake() });
    } catch (error) {
      this.#stopped = true;
      throw error;
    }
    if (!this.#stopped) return this.#schedule();
    // Stopped while subscribing.
    const unsubscribe = this.#unsubscribe;
    this.#unsubscribe = undefined;
    await unsubscribe();
  }

  /** Stops following: no change is handed on after this resolves. Waits for a call under way. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#clock.clearTimeout(this.#timer);
    const unsubscribe = this.#unsubscribe;
    this.#unsubscribe = undefined;
    await unsubscribe?.();
    await this.#running;
  }

  #schedule(): void {
    this.#timer = this.#clock.setTimeout(() => {
      if (this.#stopped) return;
      this.#wake();
      this.#schedule();
    }, this.#intervalMs);
  }

  /** Reads soon: now if nothing is under way, else right after the read under way. */
  #wake(): void {
    if (this.#stopped) return;
    this.#again = true;
    this.#running ??= this.#drain().finally(() => {
      this.#running = undefined;
      if (this.#again) this.#wake();
    });
  }

  /** Reads and hands on until a read finds less than a batch and nobody asked for more. */
  async #drain(): Promise<void> {
    while (this.#again && !this.#stopped) {
      this.#again = false;
      let entries: LoggedChange[];
      try {
        entries = await readChanges(this.#sql, this.#lastSeq, this.#batchSize);
        if (this.#failing) this.#options.logger?.warn("Reading the change log works again");
        this.#failing = false;
      } catch (error) {
        if (!this.#failing) {
          this.#options.logger?.warn(`Could not read the change log: ${reason(error)}`);
        }
        this.#failing = true;
        // The next notification, resubscription or tick tries again from the same place.
        this.#again = false;
        return;
      }
      for (const { seq, node, change } of entries) {
        if (this.#stopped) return;
        this.#lastSeq = seq;
        if (node === this.#options.skipNode) continue;
        try {
          await this.#options.onChange(seq, node, change);
        } catch (error) {
          this.#options.logger?.warn(
            `Applying change ${seq} (${change.t}) failed: ${reason(error)}`,
          );
        }
      }
      if (entries.length === this.#batchSize) this.#again = true;
    }
  }
}

function reason(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
