/**
 * When to try again: a capped exponential backoff schedule with jitter and a deadline, pure (an
 * injected clock and random source), used by the reconnecting link.
 */

/** How long and how fast to retry. */
export interface BackoffPolicy {
  /** The first delay; each later one doubles, up to `maxMs`. */
  initialMs?: number;
  maxMs?: number;
  /** Each delay is shortened by a random share of up to this, so clients spread out. */
  jitter?: number;
  /** No attempt starts later than this after the first `next()`. */
  giveUpAfterMs: number;
}

/** The next attempt: its number (from 1) and how long to wait before making it. */
export interface Attempt {
  attempt: number;
  delayMs: number;
}

/**
 * A capped exponential backoff schedule with jitter and a deadline. It reads the time from the
 * clock it is given and draws jitter from `random`, so tests get exact delays.
 */
export class Backoff {
  readonly #initialMs: number;
  readonly #maxMs: number;
  readonly #jitter: number;
  readonly #giveUpAfterMs: number;
  readonly #clock: { now(): number };
  readonly #random: () => number;
  #start: number | undefined;
  #attempts = 0;

  constructor(
    policy: BackoffPolicy,
    seams: { clock: { now(): number }; random?: () => number },
  ) {
    this.#initialMs = policy.initialMs ?? 500;
    this.#maxMs = policy.maxMs ?? 10_000;
    this.#jitter = policy.jitter ?? 0.2;
    this.#giveUpAfterMs = policy.giveUpAfterMs;
    this.#clock = seams.clock;
    this.#random = seams.random ?? Math.random;
  }

  /**
   * The next attempt, or undefined once the deadline has passed. The last delay is cut short so
   * that the last attempt starts at the deadline.
   */
  next(): Attempt | undefined {
    const now = this.#clock.now();
    this.#start ??= now;
    const left = this.#start + this.#giveUpAfterMs - now;
    if (left <= 0) return undefined;
    const base = Math.min(this.#maxMs, this.#initialMs * 2 ** this.#attempts);
    const delayMs = Math.min(left, Math.round(base * (1 - this.#jitter * this.#random())));
    this.#attempts++;
    return { attempt: this.#attempts, delayMs };
  }
}
