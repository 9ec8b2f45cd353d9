/** A source of the current time, injected so tests never sleep through real seconds. */
export interface Clock {
  /** Milliseconds since the Unix epoch. */
  now(): number;
}

/** The real wall clock. */
export const systemClock: Clock = { now: () => Date.now() };

/** A clock that only moves when a test says so. */
export class FakeClock implements Clock {
  #ms: number;

  constructor(start: number | Date = new Date(2021, 1, 23, 15, 0, 0)) {
    this.#ms = typeof start === "number" ? start : start.getTime();
  }

  now(): number {
    return this.#ms;
  }

  /** Moves the clock forward by `ms` milliseconds. */
  advance(ms: number): void {
    this.#ms += ms;
  }
}
