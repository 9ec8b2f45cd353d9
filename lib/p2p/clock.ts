/**
 * The clock seam: every timeout, retransmission timer and timestamp in the engine reads it, so
 * tests can run the timers fast or under their own control. Unlike lib/clock.ts (wall-clock
 * time, for the timestamps users see), this clock is monotonic and also schedules timers.
 *
 * @module
 */

/** An opaque handle for a pending timer. */
export type TimerHandle = unknown;

/** Time source and timer scheduler used by the P2P engine. */
export interface Clock {
  /** Milliseconds on a monotonic scale (fractions allowed). */
  now(): number;
  /** Runs `fn` once after `ms` milliseconds. */
  setTimeout(fn: () => void, ms: number): TimerHandle;
  /** Cancels a timer from {@linkcode Clock.setTimeout}; unknown handles are ignored. */
  clearTimeout(handle: TimerHandle): void;
}

/** The real clock: `performance.now()` and the runtime's timers. */
export const SYSTEM_CLOCK: Clock = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => setTimeout(fn, Math.max(0, ms)),
  clearTimeout: (handle) => clearTimeout(handle as number),
};
