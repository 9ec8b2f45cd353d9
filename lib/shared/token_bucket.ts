/**
 * The token bucket behind the frame budget: the server refuses frames over it, and the client
 * paces what it sends to stay inside it, so both sides count with one class. A burst is allowed
 * and a steady flood is not. It reads the time it is given, never a clock of its own.
 */

/** A bucket of `burst` tokens refilled at `perSecond`; each frame takes one. */
export class TokenBucket {
  #tokens: number;
  #at: number;

  constructor(readonly burst: number, readonly perSecond: number, now: number) {
    this.#tokens = burst;
    this.#at = now;
  }

  /** Takes a token at `now`; false when the bucket is empty (the frame is refused). */
  take(now: number): boolean {
    this.#refill(now);
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }

  /** Milliseconds from `now` until a token is there to take (0 when one is there now). */
  waitMs(now: number): number {
    this.#refill(now);
    if (this.#tokens >= 1) return 0;
    return Math.max(1, Math.ceil(((1 - this.#tokens) / this.perSecond) * 1000));
  }

  /** Tokens left now (fractions count toward the next one). */
  get tokens(): number {
    return this.#tokens;
  }

  #refill(now: number): void {
    // A clock that steps back (it should not) neither adds nor removes tokens.
    const elapsed = Math.max(0, now - this.#at);
    this.#tokens = Math.min(this.burst, this.#tokens + (elapsed / 1000) * this.perSecond);
    this.#at = Math.max(this.#at, now);
  }
}
