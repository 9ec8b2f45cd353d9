/** The login lockout of lib/server/lockout.ts: N failures in a row block an account a while. */
import assert from "node:assert/strict";
import { FakeClock } from "../../lib/shared/clock.ts";
import { LoginGuard } from "../../lib/server/lockout.ts";

const BLOCK_MS = 10_000;

function setUp(maxFailures = 3) {
  const clock = new FakeClock();
  return { clock, guard: new LoginGuard(maxFailures, BLOCK_MS, clock) };
}

Deno.test("LoginGuard does not lock an account with no failures", () => {
  const { guard } = setUp();
  assert.equal(guard.isLocked("yoda"), false);
});

Deno.test("LoginGuard locks on the N-th consecutive failure, not before", async () => {
  const { guard } = setUp(3);
  assert.equal(await guard.recordFailure("yoda"), "try-again");
  assert.equal(guard.isLocked("yoda"), false);
  assert.equal(await guard.recordFailure("yoda"), "try-again");
  assert.equal(guard.isLocked("yoda"), false);
  assert.equal(await guard.recordFailure("yoda"), "locked");
  assert.equal(guard.isLocked("yoda"), true);
});

for (let n = 1; n <= 5; n++) {
  Deno.test(`LoginGuard with N=${n} locks on failure ${n}`, async () => {
    const { guard } = setUp(n);
    for (let i = 1; i < n; i++) assert.equal(await guard.recordFailure("yoda"), "try-again");
    assert.equal(await guard.recordFailure("yoda"), "locked");
  });
}

Deno.test("LoginGuard's lock lasts exactly blockDurationMs", async () => {
  const { guard, clock } = setUp(1);
  await guard.recordFailure("yoda");
  clock.advance(BLOCK_MS - 1);
  assert.equal(guard.isLocked("yoda"), true);
  clock.advance(1);
  assert.equal(guard.isLocked("yoda"), false);
});

Deno.test("LoginGuard counts from zero again after a lock ends", async () => {
  const { guard, clock } = setUp(2);
  await guard.recordFailure("yoda");
  await guard.recordFailure("yoda");
  clock.advance(BLOCK_MS);
  assert.equal(guard.isLocked("yoda"), false);
  assert.equal(await guard.recordFailure("yoda"), "try-again");
  assert.equal(await guard.recordFailure("yoda"), "locked");
  assert.equal(guard.isLocked("yoda"), true);
});

Deno.test("LoginGuard resets the count on a success", async () => {
  const { guard } = setUp(3);
  await guard.recordFailure("yoda");
  await guard.recordFailure("yoda");
  await guard.recordSuccess("yoda");
  assert.equal(await guard.recordFailure("yoda"), "try-again");
  assert.equal(await guard.recordFailure("yoda"), "try-again");
  assert.equal(await guard.recordFailure("yoda"), "locked");
});

Deno.test("LoginGuard counts failures per username", async () => {
  const { guard } = setUp(2);
  assert.equal(await guard.recordFailure("yoda"), "try-again");
  assert.equal(await guard.recordFailure("hans"), "try-again");
  assert.equal(await guard.recordFailure("Yoda"), "try-again");
  assert.equal(await guard.recordFailure("yoda"), "locked");
  assert.equal(guard.isLocked("yoda"), true);
  assert.equal(guard.isLocked("hans"), false);
  assert.equal(guard.isLocked("Yoda"), false);
});

Deno.test("LoginGuard's success for one user does not reset another's count", async () => {
  const { guard } = setUp(2);
  await guard.recordFailure("yoda");
  await guard.recordSuccess("hans");
  assert.equal(await guard.recordFailure("yoda"), "locked");
});

Deno.test("LoginGuard's lock is not lifted by a success", async () => {
  const { guard } = setUp(1);
  await guard.recordFailure("yoda");
  await guard.recordSuccess("yoda");
  assert.equal(guard.isLocked("yoda"), true);
});

Deno.test("LoginGuard does not forget old failures with time alone", async () => {
  const { guard, clock } = setUp(2);
  await guard.recordFailure("yoda");
  clock.advance(24 * 3600 * 1000);
  assert.equal(await guard.recordFailure("yoda"), "locked");
});

Deno.test("LoginGuard exposes its settings", () => {
  const { guard, clock } = setUp(4);
  assert.equal(guard.maxFailures, 4);
  assert.equal(guard.blockDurationMs, BLOCK_MS);
  assert.equal(guard.clock, clock);
});
