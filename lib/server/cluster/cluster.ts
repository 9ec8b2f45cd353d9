/**
 * The server core's one seam to cluster mode (docs/CLUSTER.md): a {@linkcode Cluster} in the
 * ServerConfig makes every command that changes shared state (the board, messages, blocks, logins,
 * accounts, private messaging) propose its intent through the change log and reply with what it
 * came to, decided in `seq` order on every node. {@linkcode openCluster} makes one on a PostgreSQL database: it loads where the node
 * starts (loadForReplica), registers the node (NodeLease) and, once the server has built its Store
 * from those contents, follows the log into it (Sequencer), reporting its progress, writing
 * checkpoints and pruning as it goes (Upkeep).
 *
 * A node whose users a previous run under its id left in the online list (it died and restarted
 * before anyone reported it), or which learns that it was itself reported lost (its lease was
 * away past the watchers' grace; it takes it back by itself), proposes `node-lost` for its own id
 * before anything else it proposes: what the cluster still held of it is logged out, and this
 * node, hearing it (local_effects.ts), ends its sessions. Logins wait for it, so none is lost.
 *
 * @module
 */
import postgres from "postgres";
import type { Clock } from "../../shared/clock.ts";
import { CommandError, UnavailableError } from "../../shared/errors.ts";
import type { Logger } from "../../shared/logger.ts";
import { memoryJournal, type Storage } from "../store/journal.ts";
import { redactUrl } from "../store/postgres.ts";
import { upgradeLayout } from "../store/pg_schema.ts";
import type { Store } from "../store/store.ts";
import { loadForReplica } from "./checkpoint.ts";
import { CONNECT_TIMEOUT_S, NodeLease, SYSTEM_TICK_CLOCK, type TickClock } from "./liveness.ts";
import { LivenessWatcher } from "./liveness_watcher.ts";
import { PostgresBus } from "./postgres_bus.ts";
import type { Accepted, Outcome, Proposal } from "./proposals.ts";
import { type DecidedListener, Sequencer } from "./sequencer.ts";
import { Upkeep, type UpkeepOptions } from "./upkeep.ts";

/** What the server core asks of a cluster. */
export interface Cluster {
  /**
   * What the node's Store is built from: the replica's state where it starts, written nowhere
   * (what changes it travels in the log).
   */
  readonly storage: Storage;
  /** This node's id: the `node` of the sessions it holds in the online list. */
  readonly node: string;
  /**
   * Follows the log into `store`, built over `storage`; called once, before any proposal.
   * `onDecided` hears every proposal decided, on this node, in `seq` order (sequencer.ts).
   */
  follow(store: Store, onDecided?: DecidedListener): void;
  /**
   * Proposes; resolves with the outcome this node decided in `seq` order. Rejects with an
   * UnavailableError (`Service unavailable, try again`) when the log cannot take it, or an
   * InDoubtError when it did not answer within the deadline (it may still take it).
   */
  propose<P extends Proposal>(proposal: P): Promise<Outcome<P["t"]>>;
}

/**
 * What an accepted proposal tells its proposer; a refused one throws a CommandError with its
 * reason, which the dispatcher turns into a `failed` reply as it does any command's refusal.
 */
export async function accepted<P extends Proposal>(
  cluster: Cluster,
  proposal: P,
): Promise<Accepted[P["t"]]> {
  const outcome = await cluster.propose(proposal);
  if (!outcome.ok) throw new CommandError(outcome.reason);
  return outcome as Accepted[P["t"]];
}

/** Options of {@linkcode openCluster}. */
export interface ClusterOptions {
  /** This node's id, unique among live nodes. */
  node: string;
  clock: Clock;
  logger: Logger;
  /** Where this node listens, as the `nodes` table shows it (default 127.0.0.1:0). */
  host?: string;
  port?: number;
  /** The liveness watcher's and the upkeep's time and timers (default the real ones). */
  ticks?: TickClock;
  /** How often the node reports progress, writes checkpoints and prunes (upkeep.ts). */
  upkeep?: UpkeepOptions;
  /** The timers between tries to take back a lost lease (default the real ones). */
  leaseTimers?: TickClock;
  /**
   * How long a proposal may wait for the log before its proposer is answered `unavailable`
   * (default {@linkcode PROPOSE_DEADLINE_MS}), and on what timers (default the real ones).
   */
  deadline?: { ms: number; timers?: TickClock };
}

/**
 * How long a proposal may wait for the log: a database gone silent (stopped, or the network to it
 * dropping packets) answers nothing, and nothing times out a query on its own.
 */
export const PROPOSE_DEADLINE_MS = 5_000;

/** The reply to a proposal the log did not answer in time. */
export const IN_DOUBT =
  "Service unavailable, try again (what you asked may have been done already)";

/**
 * A proposal the log did not answer within the deadline: it may still be appended and decided
 * (what it comes to then is `late`), so the proposer is told it may have been done.
 */
export class InDoubtError extends UnavailableError {
  constructor(readonly late: Promise<Outcome>) {
    super(IN_DOUBT);
    this.name = "InDoubtError";
  }
}

/** How often a node looks for lost nodes (liveness.ts). */
export const WATCH_INTERVAL_MS = 2_000;
/**
 * How long a node's lock must be seen gone before it is reported lost: the first node back after
 * a database restart sees the others' locks gone for a moment (docs/CLUSTER.md). A dead node's
 * users are logged out within about three intervals past that, inside the 10 s the issue asks.
 */
export const LOST_GRACE_MS = 4_000;

/** A cluster node on PostgreSQL: a {@linkcode Cluster} and what it holds open. */
export interface ClusterNode extends Cluster, AsyncDisposable {
  /** The seq the node started at, and what from (a checkpoint, the tables, the whole log). */
  readonly start: { seq: number; from: "checkpoint" | "tables" | "log" };
  /** Whether the node holds its lease now (not while it takes it back after losing it). */
  readonly registered: boolean;
  /** Stops following the log, lets go of the node's registration and of the database; idempotent. */
  close(): Promise<void>;
}

/**
 * Joins the cluster on the database at `url`: upgrades its layout if need be, registers the node
 * (NodeLease) before loading, so that pruning waits for it, and loads where it starts
 * (loadForReplica). The log is followed from `follow()` on. Throws if the database cannot be
 * reached, or a live node holds the id.
 */
export async function openCluster(url: string, options: ClusterOptions): Promise<ClusterNode> {
  const { node, clock, logger } = options;
  const sql = postgres(url, {
    max: 4,
    fetch_types: false,
    connect_timeout: CONNECT_TIMEOUT_S,
    onnotice: () => {},
  });
  let lease: NodeLease | undefined;
  let bus: PostgresBus | undefined;
  const hooks: Hooks = {};
  try {
    await sql.begin((tx) => upgradeLayout(tx, redactUrl(url)));
    lease = await NodeLease.acquire(url, {
      id: node,
      host: options.host ?? "127.0.0.1",
      port: options.port ?? 0,
    }, {
      clock,
      onDisconnected: (reason) => {
        logger.warn(`Cluster node ${node} lost its lease (${reason}); taking it back`);
        hooks.disconnected?.();
      },
      reconnect: {
        onRegained: ({ declaredLost }) => hooks.regained?.(declaredLost),
        logger,
        ...(options.leaseTimers ? { timers: options.leaseTimers } : {}),
      },
    });
    const { contents, seq, from } = await loadForReplica(sql);
    bus = PostgresBus.connect(url, { logger });
    const ticks = options.ticks ?? SYSTEM_TICK_CLOCK;
    const upkeep = options.upkeep ?? {};
    const deadline = {
      ms: options.deadline?.ms ?? PROPOSE_DEADLINE_MS,
      timers: options.deadline?.timers ?? SYSTEM_TICK_CLOCK,
    };
    const held = { sql, bus, lease, node, logger, clock, ticks, upkeep, hooks, deadline };
    return new PostgresClusterNode(held, {
      ...memoryJournal,
      contents,
    }, { seq, from });
  } catch (error) {
    await bus?.close();
    await lease?.release();
    await sql.end({ timeout: 1 });
    throw error;
  }
}

/** What a {@linkcode PostgresClusterNode} holds open. */
interface Held {
  sql: postgres.Sql;
  bus: PostgresBus;
  lease: NodeLease;
  node: string;
  logger: Logger;
  clock: Clock;
  ticks: TickClock;
  upkeep: UpkeepOptions;
  hooks: Hooks;
  deadline: { ms: number; timers: TickClock };
}

/** What the lease tells the node, set once the node is made. */
interface Hooks {
  /** The lease lost its lock (it takes it back by itself). */
  disconnected?: () => void;
  /** The lease holds its lock again; `declaredLost`: it was reported lost meanwhile. */
  regained?: (declaredLost: boolean) => void;
}

class PostgresClusterNode implements ClusterNode {
  readonly storage: Storage;
  readonly node: string;
  readonly start: ClusterNode["start"];
  readonly #held: Held;
  #sequencer: Sequencer | undefined;
  #watcher: LivenessWatcher | undefined;
  #upkeep: Upkeep | undefined;
  /** Nodes the watcher found lost whose `node-lost` the log has not taken yet. */
  readonly #lost = new Set<string>();
  #retry: unknown;
  /** How many times this node found it must propose its own `node-lost`, and has (see #cleared). */
  #clearWanted = 0;
  #clearDone = 0;
  #clearing: Promise<void> | undefined;
  #clearRetry: unknown;
  /** Whether this node has heard its own `node-lost` decided since it last lost its lease. */
  #heardOwnLost = false;
  #started: Promise<void> | undefined;
  #closing: Promise<void> | undefined;

  constructor(held: Held, storage: Storage, start: ClusterNode["start"]) {
    this.#held = held;
    this.storage = storage;
    this.node = held.node;
    this.start = start;
    held.hooks.regained = (declaredLost) => this.#regained(declaredLost);
    held.hooks.disconnected = () => this.#heardOwnLost = false;
  }

  get registered(): boolean {
    return this.#held.lease.held;
  }

  follow(store: Store, onDecided?: DecidedListener): void {
    if (this.#sequencer) throw new Error("The cluster node follows the log already");
    const { sql, bus, node, logger } = this.#held;
    this.#sequencer = new Sequencer(store, {
      sql,
      bus,
      node,
      after: this.start.seq,
      logger,
      onDecided: (proposal, outcome, proposer) => {
        if (proposal.t === "node-lost" && proposal.node === node) this.#heardOwnLost = true;
        return onDecided?.(proposal, outcome, proposer);
      },
    });
    this.#started = this.#sequencer.start();
    // A failed start is what the next proposal hears.
    this.#started.catch(() => {});
    const { lease, ticks } = this.#held;
    this.#watcher = new LivenessWatcher(sql, {
      lease,
      clock: ticks,
      intervalMs: WATCH_INTERVAL_MS,
      graceMs: LOST_GRACE_MS,
      logger,
      onLost: (lost) => {
        this.#lost.add(lost);
        void this.#reportLost();
      },
    });
    this.#watcher.start();
    const sequencer = this.#sequencer;
    this.#upkeep = new Upkeep({
      sql,
      node,
      store,
      appliedSeq: () => sequencer.lastSeq,
      report: (seq) => this.#held.lease.reportProgress(seq),
      clock: ticks,
      logger,
    }, this.#held.upkeep);
    this.#upkeep.start();
    // A row taken back at start is a previous run's that died unreported: its users may be listed.
    if (lease.rejoined) this.#clearWanted++;
    this.#clearSoon();
  }

  /** The lease holds its lock again: if it was reported lost meanwhile, it is out of the cluster. */
  #regained(declaredLost: boolean): void {
    const { node, logger } = this.#held;
    if (!declaredLost) return logger.warn(`Cluster node ${node} holds its lease again`);
    logger.warn(`Cluster node ${node} was reported lost while away; ending its sessions`);
    // Its own node-lost decided since the lease went away has ended them already; else propose it.
    if (!this.#heardOwnLost) this.#clearWanted++;
    this.#clearSoon();
  }

  /** Proposes this node's own `node-lost` now if it must, and again later while that fails. */
  #clearSoon(): void {
    if (this.#clearDone >= this.#clearWanted || !this.#sequencer) return;
    this.#cleared().catch(() => {
      const { ticks } = this.#held;
      if (this.#closing || this.#clearRetry !== undefined) return;
      this.#clearRetry = ticks.setTimeout(() => {
        this.#clearRetry = undefined;
        this.#clearSoon();
      }, WATCH_INTERVAL_MS);
    });
  }

  /**
   * Resolves once this node's own `node-lost` is decided, if it must propose one: what the cluster
   * still lists on this node is logged out before anything else this node proposes. Rejects as a
   * proposal does if the log cannot take it (the next proposal tries again).
   */
  async #cleared(): Promise<void> {
    while (this.#clearDone < this.#clearWanted) {
      this.#clearing ??= this.#clear().finally(() => this.#clearing = undefined);
      await this.#clearing;
    }
  }

  async #clear(): Promise<void> {
    const { node, clock, logger } = this.#held;
    const wanted = this.#clearWanted;
    await this.#started;
    const outcome = await this.#sequencer!.propose({ t: "node-lost", node, at: clock.now() });
    this.#clearDone = Math.max(this.#clearDone, wanted);
    if (outcome.ok && outcome.users.length > 0) {
      logger.warn(
        `Cluster node ${node} logged out what it held before: ${outcome.users.join(", ")}`,
      );
    }
  }

  /**
   * Proposes `node-lost` for each node found lost: every node then logs its users out and tells
   * its own users (local_effects.ts). The watcher has removed the node's row already, so no one
   * else will report it: a proposal the log could not take is tried again an interval later.
   */
  async #reportLost(): Promise<void> {
    const { clock, ticks, logger } = this.#held;
    for (const node of [...this.#lost]) {
      if (this.#closing) return;
      try {
        // No deadline: a report answered late could be decided after one made again.
        const outcome = await this.#decided({ t: "node-lost", node, at: clock.now() });
        this.#lost.delete(node);
        if (outcome.ok) {
          logger.warn(
            `Cluster node ${node} lost; logged out: ${outcome.users.join(", ") || "nobody"}`,
          );
        }
      } catch (error) {
        logger.warn(`Could not report cluster node ${node} lost yet: ${String(error)}`);
      }
    }
    if (this.#lost.size === 0 || this.#closing || this.#retry !== undefined) return;
    this.#retry = ticks.setTimeout(() => {
      this.#retry = undefined;
      void this.#reportLost();
    }, WATCH_INTERVAL_MS);
  }

  /**
   * Proposes within the deadline: a proposal the log has not answered by then rejects with an
   * InDoubtError (its proposer is told it may have been done), though it may still be decided.
   */
  propose<P extends Proposal>(proposal: P): Promise<Outcome<P["t"]>> {
    const decided = this.#decided(proposal);
    const { ms, timers } = this.#held.deadline;
    return new Promise<Outcome<P["t"]>>((resolve, reject) => {
      const timer = timers.setTimeout(() => reject(new InDoubtError(decided)), ms);
      decided.then((outcome) => {
        timers.clearTimeout(timer);
        resolve(outcome);
      }, (error) => {
        timers.clearTimeout(timer);
        reject(error);
      });
    });
  }

  /**
   * Proposes once the node follows the log and has logged out what a previous run left, however
   * long the log takes (what the node proposes for itself, in the background, waits it out).
   */
  async #decided<P extends Proposal>(proposal: P): Promise<Outcome<P["t"]>> {
    if (!this.#sequencer || !this.#started) {
      throw new Error("The cluster node is not following the log yet");
    }
    await this.#started;
    await this.#cleared();
    return await this.#sequencer.propose(proposal);
  }

  close(): Promise<void> {
    return this.#closing ??= (async () => {
      const { sql, bus, lease, ticks } = this.#held;
      ticks.clearTimeout(this.#retry);
      ticks.clearTimeout(this.#clearRetry);
      await this.#watcher?.stop();
      await this.#upkeep?.stop();
      await this.#sequencer?.stop();
      await bus.close();
      await lease.release();
      await sql.end({ timeout: 5 });
    })();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
