/**
 * Consecutive failed logins per username, counted across every connection and address, and
 * the lockout that the N-th failure starts.
 */
import type { Clock } from "../shared/clock.ts";

/** What a failed attempt led to. */
export type FailureOutcome = "try-again" | "locked";

/** Failure counts and lockouts, on an injected clock. */
export class LoginGuard {
  readonly #failures = new Map<string, number>();
  readonly #lockedUntil = new Map<string, number>();

  constructor(
    readonly maxFailures: number,
    readonly blockDurationMs: number,
    readonly clock: Clock,
  ) {}

  /** Whether logins for `username` are refused right now. */
  isLocked(username: string): boolean {
    const until = this.#lockedUntil.get(username);
    if (until === undefined) return false;
    if (this.clock.now() < until) return true;
    this.#lockedUntil.delete(username);
    return false;
  }

  /** Counts a wrong password; the N-th in a row locks the account and resets the count. */
  recordFailure(username: string): FailureOutcome {
    const failures = (this.#failures.get(username) ?? 0) + 1;
    if (failures < this.maxFailures) {
      this.#failures.set(username, failures);
      return "try-again";
    }
    this.#failures.delete(username);
    this.#lockedUntil.set(username, this.clock.now() + this.blockDurationMs);
    return "locked";
  }

  /** A successful login resets the count. */
  recordSuccess(username: string): void {
    this.#failures.delete(username);
  }
}
