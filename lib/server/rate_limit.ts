/**
 * The command rate limit: a token bucket per session, so a burst is allowed and a steady flood
 * is not. It reads the time it is given, never a clock of its own.
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
    this.#tokens = Math.min(this.burst, this.#tokens + ((now - this.#at) / 1000) * this.perSecond);
    this.#at = now;
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }

  /** Tokens left now (fractions count toward the next one). */
  get tokens(): number {
    return this.#tokens;
  }
}
