/**
 * Group commit, for every database storage: changes are gathered and committed one batch at a
 * time, so what is recorded while a commit is under way goes into the next, and each change's
 * promise settles with the commit that holds it. How a batch is committed (a SQLite writer
 * thread, a PostgreSQL transaction) is the storage's; when, and in what order, is decided here.
 */
import { setImmediate } from "node:timers";
import type { Clock } from "../../shared/clock.ts";
import type { Logger } from "../../shared/logger.ts";
import { type Change, type Journal, StorageError } from "./journal.ts";
import { aliveAt, type Statement, statementsOf } from "./statements.ts";

/** How long a noted change may wait for a commit to ride along with. */
export const NOTE_DELAY_MS = 100;

/** How often an idle store notes that the server is alive (for users a killed run had online). */
export const ALIVE_EVERY_MS = 10_000;

/** How one database commits a batch and lets go of itself. */
export interface Committer {
  /**
   * Runs `statements` in one transaction; resolves once it is committed, rejects if not.
   * `changes` are the changes they record, in order, for a committer that also logs them.
   */
  commit(statements: Statement[], changes: readonly Change[]): Promise<void>;
  /** Lets go of the database; called once, after the last commit has settled. */
  close(): Promise<void>;
}

/** Options of a {@linkcode GroupCommit}. */
export interface GroupCommitOptions {
  clock: Clock;
  /** Where the changes go, for messages (a path, a URL without its password). */
  location: string;
  /** Hears of commits that failed (at most one warning a minute). */
  logger?: Logger | undefined;
}

interface Pending {
  change: Change;
  resolve: () => void;
  reject: (error: unknown) => void;
}

const ignore = () => {};

/** The journal of a database storage: changes committed in groups by a {@linkcode Committer}. */
export class GroupCommit implements Journal {
  readonly #committer: Committer;
  readonly #clock: Clock;
  readonly #location: string;
  readonly #logger: Logger | undefined;
  #pending: Pending[] = [];
  #scheduled = false;
  /** The commit in flight, if any. */
  #inFlight: Promise<void> | undefined;
  #closed = false;
  readonly #alive: ReturnType<typeof setInterval>;
  /** Commits noted changes when nothing else has by then. */
  #noteTimer: ReturnType<typeof setTimeout> | undefined;
  #lastWarning: number | undefined;

  constructor(committer: Committer, options: GroupCommitOptions) {
    this.#committer = committer;
    this.#clock = options.clock;
    this.#location = options.location;
    this.#logger = options.logger;
    this.#alive = setInterval(() => this.#touch(), ALIVE_EVERY_MS);
    Deno.unrefTimer(this.#alive);
  }

  note(change: Change): void {
    if (this.#closed) return;
    this.#pending.push({ change, resolve: ignore, reject: ignore });
    if (this.#scheduled || this.#inFlight || this.#noteTimer !== undefined) return;
    this.#noteTimer = setTimeout(() => {
      this.#noteTimer = undefined;
      this.#flush();
    }, NOTE_DELAY_MS);
  }

  record(change: Change): Promise<void> {
    if (this.#closed) return Promise.reject(new StorageError(`${this.#location} is closed`));
    return new Promise((resolve, reject) => {
      this.#pending.push({ change, resolve, reject });
      if (this.#scheduled || this.#inFlight) return;
      this.#scheduled = true;
      // Everything recorded until the event loop has handled the input at hand goes into the same
      // commit (setImmediate runs after that; a zero timeout would wait a millisecond or more).
      setImmediate(() => {
        this.#scheduled = false;
        this.#flush();
      });
    });
  }

  /** Sends what is pending as one commit; when it is done, the next (gathered meanwhile). */
  #flush(): void {
    if (this.#inFlight || this.#pending.length === 0) return;
    const batch = this.#pending;
    this.#pending = [];
    const commit = this.#committer.commit([
      ...batch.flatMap(({ change }) => statementsOf(change)),
      aliveAt(this.#clock.now()),
    ], batch.map(({ change }) => change));
    this.#settle(commit.then(
      () => {
        for (const { resolve } of batch) resolve();
      },
      (error) => {
        this.#warn(error);
        for (const { reject } of batch) reject(error);
      },
    ));
  }

  /** Makes `commit` the one in flight; once it has settled, the next batch goes. */
  #settle(commit: Promise<void>): void {
    this.#inFlight = commit.finally(() => {
      this.#inFlight = undefined;
      this.#flush();
    });
  }

  /** Tells the operator a commit failed, at most once a minute (the users are told each time). */
  #warn(error: unknown): void {
    const now = this.#clock.now();
    if (this.#lastWarning !== undefined && now - this.#lastWarning < 60_000) return;
    this.#lastWarning = now;
    this.#logger?.warn(
      `Could not write ${this.#location}: ${error} (what needs it is refused meanwhile; every later change tries again)`,
    );
  }

  /** Notes that the server is alive, when nothing else is being written. */
  #touch(): void {
    if (this.#closed || this.#scheduled || this.#inFlight) return;
    // A failure here says nothing a user waits for; the next change tries again and is told.
    this.#settle(this.#committer.commit([aliveAt(this.#clock.now())], []).catch(ignore));
  }

  /** Commits what is pending and lets go of the database. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#alive);
    clearTimeout(this.#noteTimer);
    this.#flush();
    while (this.#inFlight) await this.#inFlight;
    await this.#committer.close().catch(ignore);
  }
}
