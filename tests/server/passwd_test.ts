/**
 * `passwd` as a password guesser would use it: a wrong old password counts as a failed login for
 * the account (the lockout ends the session) and for the source address; a locked account cannot
 * change its password.
 */
import assert from "node:assert/strict";
import { TOO_MANY_FAILURES } from "../../lib/server/login.ts";
import {
  loggedIn,
  memoryAddress,
  settle,
  startServer,
  type TestClient,
} from "../../testing/server_fixture.ts";

/** Sends `passwd` with the old password and a new one. */
function passwd(client: TestClient, old: string, fresh = "new") {
  return client.link.request({ t: "passwd", old, new: fresh });
}

Deno.test("wrong old passwords lock the account, end the session and refuse logins until the block passes", async () => {
  await using test = await startServer({ maxFailures: 3, blockDurationMs: 10_000 });
  const vader = await loggedIn(test, "vader", "sithlord", 7000);
  const yoda = await loggedIn(test, "yoda", "jedi");
  for (let i = 0; i < 2; i++) {
    const reply = await passwd(yoda, "sith");
    assert.equal(reply.code, "failed");
    assert.deepEqual(reply.lines, ["Old password is incorrect. Password not changed."]);
  }
  const last = await passwd(yoda, "sith");
  assert.equal(last.code, "locked");
  assert.deepEqual(last.lines, [
    "Old password is incorrect. Your account has been blocked. Please try again later",
  ]);
  const logout = await yoda.waitForEvent((event) => event.kind === "logout");
  assert.deepEqual(logout.data, { reason: "blocked" });
  assert.deepEqual(logout.lines, ["You have been logged out: your account is blocked for now"]);
  assert.equal(await yoda.link.closed, "Connection to server lost");
  // Logged out as by OUT: gone from the roster and the userlog, and others are told.
  await vader.waitFor("yoda logged out");
  assert.equal(test.server.state.roster.online.has("yoda"), false);
  assert.ok(!test.file("userlog.txt").includes("yoda"));
  assert.ok(test.logger.lines.includes("yoda blocked after 3 failed login(s)"));
  assert.ok(test.logger.lines.includes("yoda logged out (logged out)"));
  // The block holds for logins from anywhere, right password or not, until it passes.
  test.clock.advance(9_999);
  const during = await test.connect(memoryAddress("10.9.9.9:1")).login("yoda", "jedi");
  assert.equal(during.code, "blocked");
  test.clock.advance(1);
  const after = await test.connect().login("yoda", "jedi");
  assert.equal(after.ok, true, "the password was not changed");
});

Deno.test("passwd is refused while the account is locked, and the session stays", async () => {
  await using test = await startServer({ maxFailures: 2 });
  const yoda = await loggedIn(test, "yoda", "jedi");
  // A stranger locks the account by guessing at the login prompt.
  for (let i = 0; i < 2; i++) await test.connect(memoryAddress("10.6.6.6:1")).login("yoda", "x");
  assert.equal(test.server.login.guard.isLocked("yoda"), true);
  const refused = await passwd(yoda, "jedi");
  assert.equal(refused.code, "blocked");
  assert.deepEqual(refused.lines, [
    "Your account is blocked due to multiple login failures. Please try again later",
  ]);
  assert.equal((await yoda.cmd("whoelse")).ok, true);
  test.clock.advance(10_000);
  assert.deepEqual((await passwd(yoda, "jedi", "jedi2")).lines, ["Password changed."]);
});

Deno.test("a right old password resets the account's failure count", async () => {
  await using test = await startServer({ maxFailures: 3 });
  const yoda = await loggedIn(test, "yoda", "jedi");
  await passwd(yoda, "x");
  await passwd(yoda, "x");
  assert.equal((await passwd(yoda, "jedi", "jedi2")).ok, true);
  assert.equal((await passwd(yoda, "x")).code, "failed");
  assert.equal((await passwd(yoda, "x")).code, "failed");
  assert.equal((await passwd(yoda, "x")).code, "locked");
});

Deno.test("wrong old passwords count toward the address's failed-login limit", async () => {
  await using test = await startServer({ maxFailures: 5, maxFailuresPerIp: 2 });
  const yoda = test.connect(memoryAddress("10.0.0.42:1"));
  assert.equal((await yoda.login("yoda", "jedi")).ok, true);
  const checks = (() => {
    const accounts = test.server.login.accounts;
    const check = accounts.check.bind(accounts);
    let count = 0;
    accounts.check = (user, password) => (count++, check(user, password));
    return () => count;
  })();
  assert.equal((await passwd(yoda, "x")).code, "failed");
  assert.equal((await passwd(yoda, "x")).code, "failed");
  const throttled = await passwd(yoda, "jedi");
  assert.equal(throttled.code, "throttled");
  assert.deepEqual(throttled.lines, [TOO_MANY_FAILURES]);
  assert.equal(checks(), 2, "the throttled passwd was not checked");
  // The address's logins are throttled too; another address's are not.
  const again = await test.connect(memoryAddress("10.0.0.42:2")).login("hans", "falcon");
  assert.equal(again.code, "throttled");
  assert.equal((await test.connect(memoryAddress("10.0.0.43:2")).login("hans", "falcon")).ok, true);
  await settle();
  assert.equal(test.server.state.roster.online.has("yoda"), true);
});
