/**
 * Waiting for something another party does (a notification arriving, a server noticing a dead
 * connection) without a fixed sleep: poll a condition until it holds, with a failsafe deadline
 * that turns "never" into a failure naming what was awaited.
 */

/** How long to keep trying, and how often. */
export interface PollOptions {
  /** The failsafe: give up after this long (default 15 s). */
  timeoutMs?: number;
  /** Pause between tries (default 10 ms). */
  everyMs?: number;
}

/**
 * Resolves with the first truthy value `check` returns; rejects, naming `what`, once the
 * failsafe deadline has passed. `check` may be async; an error it throws fails at once.
 */
export async function eventually<T>(
  what: string,
  check: () => T | Promise<T>,
  options: PollOptions = {},
): Promise<NonNullable<T>> {
  const timeoutMs = options.timeoutMs ?? 15_000;
  const everyMs = options.everyMs ?? 10;
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (performance.now() > deadline) {
      throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`);
    }
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}
