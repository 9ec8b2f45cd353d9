/**
 * The Sequencer (docs/CLUSTER.md): one node's way of proposing and of following the
 * change log. {@linkcode Sequencer.propose} appends a proposal (proposals.ts) to the log and
 * resolves with the outcome this node's own tail decided when it reached that entry; the tail
 * applies every entry in `seq` order — proposals with `decide`, this node's included (a node never
 * decides its own proposal early: its reply would be one no other node agrees with), and Changes
 * storages committed with `applyChange`.
 *
 * A cluster node's Store writes through memoryJournal (cluster.ts): it appends no Changes, and
 * every Change in the log is applied, whichever node id it carries. A node restarted under its old
 * id thus replays what an earlier process of that id logged after its checkpoint. Only a Store
 * whose own storage logs its Changes (PostgresStorage's `logChangesAs`, in tests) has Changes in
 * the log that it holds already: `ownChanges` names them, and must name that storage's process
 * alone, never an id a later process reuses.
 *
 * A listener (`onDecided`) hears every decided proposal with its outcome, on every node: what a
 * node does for its own sessions (cluster/local_effects.ts).
 *
 * What proposals decide lives in every node's memory and in the log, not in the state tables: a
 * starting node loads the newest checkpoint (checkpoint.ts, written by upkeep.ts) and replays the
 * log after it.
 *
 * @module
 */
import type postgres from "postgres";
import { UnavailableError } from "../../shared/errors.ts";
import type { Logger } from "../../shared/logger.ts";
import type { Change } from "../store/journal.ts";
import { applyChange } from "../store/replica.ts";
import type { Store } from "../store/store.ts";
import type { Bus } from "./bus.ts";
import { appendChanges, ChangeTail } from "./change_log.ts";
import type { TickClock } from "./liveness.ts";
import {
  decide,
  type Outcome,
  type Proposal,
  type ProposalEntry,
  proposalOf,
} from "./proposals.ts";

/** Options of a {@linkcode Sequencer}. */
export interface SequencerOptions {
  /** A pool on the cluster's database, kept (and ended) by the caller. */
  sql: postgres.Sql;
  /** Wakes the tail on each commit (a PostgresBus on the same database), kept by the caller. */
  bus: Bus;
  /** This node's id: the log's `node` of what it appends. */
  node: string;
  /**
   * The log's `node` of the Changes this Store's own storage appends, if it appends any: they are
   * in the Store already, and passed over. Default none: every Change is applied.
   */
  ownChanges?: string;
  /** The seq the store's contents reflect (storage.seq with atSeq): the tail starts after it. */
  after: number;
  /** The tail's failsafe interval (default 1 s) and its clock. */
  intervalMs?: number;
  clock?: TickClock;
  logger?: Logger;
  /**
   * Hears every proposal this node decides, in `seq` order, with its outcome and the node that
   * proposed it (what the node does for its own sessions: presence notices, deliveries). The
   * proposer's reply waits for what it returns; the tail does not.
   */
  onDecided?: DecidedListener;
}

/**
 * What a node does with each decided proposal, on every node, given the node that proposed it (see
 * SequencerOptions.onDecided).
 */
export type DecidedListener = (
  proposal: Proposal,
  outcome: Outcome,
  proposer: string,
) => Promise<void> | void;

/** Someone waiting for the outcome of the proposal at a seq. */
interface Waiter {
  resolve(outcome: Outcome): void;
  reject(error: Error): void;
}

/** Proposes through the change log and applies the log, in order, to one node's Store. */
export class Sequencer {
  readonly #store: Store;
  readonly #sql: postgres.Sql;
  readonly #node: string;
  readonly #ownChanges: string | undefined;
  readonly #tail: ChangeTail;
  readonly #onDecided: DecidedListener | undefined;
  readonly #logger: Logger | undefined;
  /** This node's proposals appended and not yet decided here, by seq. */
  readonly #waiting = new Map<number, Waiter>();
  /**
   * Outcomes of this node's proposals decided before their `propose` heard its seq back (the tail
   * can read a commit before the appending connection reports it), by seq.
   */
  readonly #early = new Map<number, Promise<Outcome>>();
  /** Appends under way: while none is, an early outcome can belong to nobody. */
  #appending = 0;
  #stopped = false;

  /** A sequencer applying the log to `store`; {@linkcode start} sets its tail going. */
  constructor(store: Store, options: SequencerOptions) {
    this.#store = store;
    this.#sql = options.sql;
    this.#node = options.node;
    this.#ownChanges = options.ownChanges;
    this.#onDecided = options.onDecided;
    this.#logger = options.logger;
    this.#tail = new ChangeTail(options.sql, options.bus, {
      onChange: (seq, node, entry) => this.#apply(seq, node, entry),
      after: options.after,
      ...(options.intervalMs !== undefined ? { intervalMs: options.intervalMs } : {}),
      ...(options.clock ? { clock: options.clock } : {}),
      ...(options.logger ? { logger: options.logger } : {}),
    });
  }

  /** The seq of the last entry this node has applied. */
  get lastSeq(): number {
    return this.#tail.lastSeq;
  }

  /** Starts following the log; rejects if the bus cannot subscribe. */
  start(): Promise<void> {
    return this.#tail.start();
  }

  /**
   * Stops following the log; proposals still waiting reject (their outcome may still come about:
   * other nodes decide them).
   */
  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#tail.stop();
    for (const waiter of this.#waiting.values()) {
      waiter.reject(new Error("The sequencer stopped before the proposal was applied"));
    }
    this.#waiting.clear();
    this.#early.clear();
  }

  /**
   * Appends `proposal` to the log and resolves with the outcome this node decided once its tail
   * applied it (and messagelog.txt followed). Rejects with an UnavailableError (`Service unavailable, try again`) if the
   * log could not take it; then no node decides it.
   */
  async propose<P extends Proposal>(proposal: P): Promise<Outcome<P["t"]>> {
    if (this.#stopped) throw new Error("The sequencer is stopped");
    const entry: ProposalEntry = { t: "proposal", proposal: withRef(proposal) };
    let seq: number | undefined;
    this.#appending++;
    try {
      seq = await this.#sql.begin((tx) => appendChanges(tx, this.#node, [entry]));
    } catch {
      throw new UnavailableError();
    } finally {
      this.#appending--;
    }
    if (seq === undefined) throw new Error("Appending a proposal gave no seq");
    const early = this.#early.get(seq);
    if (early) {
      this.#early.delete(seq);
      // Whatever is left belongs to an append that failed after its commit, or to an earlier run.
      if (this.#appending === 0) this.#early.clear();
      return await early as Outcome<P["t"]>;
    }
    if (this.#stopped) throw new Error("The sequencer stopped before the proposal was applied");
    const at = seq;
    return await new Promise<Outcome>((resolve, reject) => {
      this.#waiting.set(at, { resolve, reject });
    }) as Outcome<P["t"]>;
  }

  /** Applies one entry of the log; the next waits for this to return (not for files). */
  #apply(seq: number, node: string, entry: Change | ProposalEntry): Promise<void> | void {
    const proposal = proposalOf(entry);
    if (!proposal) {
      // The Store's own storage's Changes are in it already: its sections made them.
      return node === this.#ownChanges ? undefined : applyChange(this.#store, entry as Change);
    }
    const mine = node === this.#node;
    const waiter = mine ? this.#waiting.get(seq) : undefined;
    this.#waiting.delete(seq);
    let decided;
    try {
      decided = decide(this.#store, proposal);
    } catch (error) {
      // A bug, not a refusal: the proposer hears of it, and the tail logs it and goes on.
      waiter?.reject(error instanceof Error ? error : new Error(String(error)));
      throw error;
    }
    const { outcome, written } = decided;
    const heard = this.#hear(proposal, outcome, node);
    if (!mine) return;
    // The reply waits for messagelog.txt (and what the listener writes), as a single server's
    // does; the tail does not.
    const settled = Promise.all([written, heard]).then(() => outcome, () => outcome);
    if (waiter) void settled.then(waiter.resolve);
    // With no append under way nobody can claim it: an earlier process of this id proposed it.
    else if (this.#appending > 0) this.#early.set(seq, settled);
  }

  /** Tells the listener; what goes wrong there is logged, and the log goes on. */
  #hear(proposal: Proposal, outcome: Outcome, proposer: string): Promise<void> {
    const failed = (error: unknown) =>
      this.#logger?.warn(`Acting on a decided ${proposal.t} failed: ${String(error)}`);
    try {
      return Promise.resolve(this.#onDecided?.(proposal, outcome, proposer)).catch(failed);
    } catch (error) {
      failed(error);
      return Promise.resolve();
    }
  }
}

/** `proposal`, with a fresh random ref if it is an offline message without one. */
function withRef<P extends Proposal>(proposal: P): P {
  if (proposal.t !== "mail" || proposal.ref !== undefined) return proposal;
  const random = crypto.getRandomValues(new Uint32Array(2));
  const ref = "o" + [...random].map((n) => n.toString(16).padStart(8, "0")).join("");
  return { ...proposal, ref };
}
