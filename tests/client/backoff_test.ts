/** The backoff schedule (lib/client/backoff.ts) on an injected clock and random source. */
import assert from "node:assert/strict";
import { Backoff } from "../../lib/client/backoff.ts";
import { FakeClock } from "../../lib/shared/clock.ts";

/** Runs a backoff to its end, moving the clock by each delay plus `attemptMs` for the attempt. */
function schedule(backoff: Backoff, clock: FakeClock, attemptMs = 0): number[] {
  const delays: number[] = [];
  for (let next = backoff.next(); next; next = backoff.next()) {
    assert.equal(next.attempt, delays.length + 1);
    delays.push(next.delayMs);
    clock.advance(next.delayMs + attemptMs);
  }
  return delays;
}

Deno.test("Backoff doubles from 0.5 s up to a cap of 10 s", () => {
  const clock = new FakeClock(0);
  const backoff = new Backoff({ giveUpAfterMs: 60_000 }, { clock, random: () => 0 });
  assert.deepEqual(
    schedule(backoff, clock),
    [500, 1000, 2000, 4000, 8000, 10_000, 10_000, 10_000, 10_000, 4500],
  );
});

Deno.test("Backoff jitter only shortens a delay, by at most its share", () => {
  const clock = new FakeClock(0);
  const draws = [1, 0.5, 0];
  const backoff = new Backoff(
    { giveUpAfterMs: 60_000, initialMs: 1000, jitter: 0.2 },
    { clock, random: () => draws.shift()! },
  );
  assert.deepEqual([1, 2, 3].map(() => backoff.next()!.delayMs), [800, 1800, 4000]);
});

Deno.test("Backoff gives up at its deadline, the last delay cut short to meet it", () => {
  const clock = new FakeClock(0);
  const backoff = new Backoff({ giveUpAfterMs: 5000 }, { clock, random: () => 0 });
  assert.deepEqual(schedule(backoff, clock), [500, 1000, 2000, 1500]);
  assert.equal(clock.now(), 5000);
});

Deno.test("Backoff counts the time attempts take against its deadline", () => {
  const clock = new FakeClock(0);
  const backoff = new Backoff({ giveUpAfterMs: 10_000 }, { clock, random: () => 0 });
  // Each attempt takes 3 s (a connection that times out): 0.5+3, 1+3, 2+3 is past 10 s.
  assert.deepEqual(schedule(backoff, clock, 3000), [500, 1000, 2000]);
  assert.equal(clock.now(), 12_500);
});

Deno.test("Backoff with no time to try gives up at once", () => {
  const backoff = new Backoff({ giveUpAfterMs: 0 }, { clock: new FakeClock(0) });
  assert.equal(backoff.next(), undefined);
});
