/** The token bucket behind the frame budget: the server refuses by it, the client paces by it. */
import assert from "node:assert/strict";
import { TokenBucket } from "../../lib/shared/token_bucket.ts";

Deno.test("TokenBucket allows a full burst at once, then refuses", () => {
  const bucket = new TokenBucket(3, 1, 0);
  assert.deepEqual([1, 2, 3, 4].map(() => bucket.take(0)), [true, true, true, false]);
});

Deno.test("TokenBucket refills at its rate, counting fractions toward the next token", () => {
  const bucket = new TokenBucket(2, 10, 0);
  bucket.take(0);
  bucket.take(0);
  assert.equal(bucket.take(50), false); // half a token after 50 ms at 10/s
  assert.equal(bucket.take(100), true); // 0.5 + 0.5
  assert.equal(bucket.take(100), false);
});

Deno.test("TokenBucket never holds more than its burst, however long it waits", () => {
  const bucket = new TokenBucket(2, 50, 0);
  assert.equal(bucket.tokens, 2);
  bucket.take(3_600_000);
  assert.equal(bucket.tokens, 1);
  assert.deepEqual([bucket.take(3_600_000), bucket.take(3_600_000)], [true, false]);
});

Deno.test("TokenBucket.waitMs() says how long until the next token, 0 when one is there", () => {
  const bucket = new TokenBucket(1, 4, 0);
  assert.equal(bucket.waitMs(0), 0);
  bucket.take(0);
  assert.equal(bucket.waitMs(0), 250);
  assert.equal(bucket.waitMs(100), 150);
  assert.equal(bucket.waitMs(250), 0);
  assert.equal(bucket.take(250), true);
  // A fraction of a millisecond still waits a whole one, so a paced sender never spins.
  const slow = new TokenBucket(1, 3, 0);
  slow.take(0);
  assert.equal(slow.waitMs(0), 334);
});
