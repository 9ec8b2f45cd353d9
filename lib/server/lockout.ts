/**
 * Consecutive failed logins per username, counted across every connection and address, and
 * the lockout that the N-th failure starts. Counts and lockouts are written down (the store's
 * journal), so restarting the server neither clears a lockout nor forgives failures.
 */
import type { Clock } from "../shared/clock.ts";
import { type Journal, type LockoutRecord, memoryJournal } from "./store/journal.ts";

/** What a failed attempt led to. */
export type FailureOutcome = "try-again" | "locked";

/** Failure counts and lockouts, on an injected clock. */
export class LoginGuard {
  readonly #failures = new Map<string, number>();
  readonly #lockedUntil = new Map<string, number>();
  readonly #journal: Journal;

  /** `lockouts` are those in force when the server started. */
  constructor(
    readonly maxFailures: number,
    readonly blockDurationMs: number,
    readonly clock: Clock,
    options: { journal?: Journal; lockouts?: LockoutRecord[] } = {},
  ) {
    this.#journal = options.journal ?? memoryJournal;
    for (const { user, failures, until } of options.lockouts ?? []) {
      if (failures > 0) this.#failures.set(user, failures);
      if (until > 0) this.#lockedUntil.set(user, until);
    }
  }

  /** Whether logins for `username` are refused right now. */
  isLocked(username: string): boolean {
    const until = this.#lockedUntil.get(username);
    if (until === undefined) return false;
    if (this.clock.now() < until) return true;
    this.#lockedUntil.delete(username);
    return false;
  }

  /**
   * Counts a wrong password; the N-th in a row locks the account and resets the count. Resolves
   * once that is written down (if it cannot be, the count still holds while the server runs).
   */
  async recordFailure(username: string): Promise<FailureOutcome> {
    const failures = (this.#failures.get(username) ?? 0) + 1;
    let outcome: FailureOutcome;
    if (failures < this.maxFailures) {
      this.#failures.set(username, failures);
      outcome = "try-again";
    } else {
      this.#failures.delete(username);
      this.#lockedUntil.set(username, this.clock.now() + this.blockDurationMs);
      outcome = "locked";
    }
    await this.#save(username);
    return outcome;
  }

  /** A successful login resets the count. */
  async recordSuccess(username: string): Promise<void> {
    if (!this.#failures.delete(username)) return;
    await this.#save(username);
  }

  /**
   * `user`'s failure count and the end of their last lockout as held (0 for none; a lockout that
   * has run out may still be here), read without the clock: what a cluster proposal counts from
   * (lib/server/cluster/presence.ts).
   */
  recordOf(user: string): LockoutRecord {
    return {
      user,
      failures: this.#failures.get(user) ?? 0,
      until: this.#lockedUntil.get(user) ?? 0,
    };
  }

  /**
   * Applies a `lockout` change another node made (lib/server/store/replica.ts): `user`'s count and
   * lockout become the recorded values (absolute, so applying one twice is the same as once), and
   * are not written down again. Both 0 forgets the user, as at start.
   */
  applyLockout({ user, failures, until }: LockoutRecord): void {
    if (failures > 0) this.#failures.set(user, failures);
    else this.#failures.delete(user);
    if (until > 0) this.#lockedUntil.set(user, until);
    else this.#lockedUntil.delete(user);
  }

  /** Every user's failure count and lockout, as `applyLockout` takes them (for a checkpoint). */
  get lockouts(): LockoutRecord[] {
    const users = new Set([...this.#failures.keys(), ...this.#lockedUntil.keys()]);
    return [...users].map((user) => ({
      user,
      failures: this.#failures.get(user) ?? 0,
      until: this.#lockedUntil.get(user) ?? 0,
    }));
  }

  #save(user: string): Promise<void> {
    const failures = this.#failures.get(user) ?? 0;
    const until = this.#lockedUntil.get(user) ?? 0;
    return this.#journal.record({ t: "lockout", user, failures, until }).catch(() => {});
  }
}
