/** Logging in through the server: usernames, passwords, blocking, duplicates and timeouts. */
import assert from "node:assert/strict";
import { loggedIn, memoryAddress, settle, startServer } from "../../testing/server_fixture.ts";

Deno.test("login succeeds with the right password and writes the userlog line", async () => {
  await using test = await startServer();
  const client = test.connect(memoryAddress("129.64.1.11:5000"));
  const reply = await client.login("yoda", "jedi", 6666);
  assert.equal(reply.ok, true);
  assert.deepEqual(reply.lines, ["Welcome to TOOM!"]);
  assert.equal(test.file("userlog.txt"), "1; 23 Feb 2021 15:00:00; yoda; 129.64.1.11; 6666\n");
});

Deno.test("an unknown username is refused and the username can be asked again", async () => {
  await using test = await startServer();
  const client = test.connect();
  await client.hello();
  const unknown = await client.link.request({ t: "user", name: "darth" });
  assert.equal(unknown.ok, false);
  assert.deepEqual(unknown.lines, ["Username does not exist"]);
  const known = await client.link.request({ t: "user", name: "yoda" });
  assert.equal(known.ok, true);
});

Deno.test("usernames are case-sensitive", async () => {
  await using test = await startServer();
  const client = test.connect();
  await client.hello();
  const reply = await client.link.request({ t: "user", name: "Yoda" });
  assert.deepEqual(reply.lines, ["Username does not exist"]);
});

Deno.test("a wrong password asks again, and the N-th in a row blocks the account", async () => {
  await using test = await startServer({ maxFailures: 3 });
  const client = test.connect();
  await client.hello();
  await client.link.request({ t: "user", name: "yoda" });
  for (let i = 0; i < 2; i++) {
    const reply = await client.link.request({ t: "pass", password: "sith", udpPort: 1 });
    assert.deepEqual(reply.lines, ["Invalid Password. Please try again"]);
  }
  const last = await client.link.request({ t: "pass", password: "sith", udpPort: 1 });
  assert.equal(last.code, "locked");
  assert.deepEqual(last.lines, [
    "Invalid Password. Your account has been blocked. Please try again later",
  ]);
  assert.equal(await client.link.closed, "Connection to server lost");
});

Deno.test("failures are counted per username across connections", async () => {
  await using test = await startServer({ maxFailures: 2 });
  const first = await test.connect().login("yoda", "wrong");
  assert.equal(first.code, "bad-password");
  const second = await test.connect({ hostname: "10.0.0.9", port: 1 }).login("yoda", "wrong");
  assert.equal(second.code, "locked");
});

Deno.test("a blocked account is refused even with the right password until the block ends", async () => {
  await using test = await startServer({ maxFailures: 1, blockDurationMs: 10_000 });
  assert.equal((await test.connect().login("yoda", "wrong")).code, "locked");
  test.clock.advance(9_999);
  const during = await test.connect().login("yoda", "jedi");
  assert.equal(during.code, "blocked");
  assert.deepEqual(during.lines, [
    "Your account is blocked due to multiple login failures. Please try again later",
  ]);
  test.clock.advance(1);
  const after = await test.connect().login("yoda", "jedi");
  assert.equal(after.ok, true);
});

Deno.test("a success resets the failure count", async () => {
  await using test = await startServer({ maxFailures: 2 });
  assert.equal((await test.connect().login("yoda", "wrong")).code, "bad-password");
  const ok = await loggedIn(test, "yoda", "jedi");
  await ok.cmd("OUT");
  assert.equal((await test.connect().login("yoda", "wrong")).code, "bad-password");
});

Deno.test("a second login is denied by default and the first session stays", async () => {
  await using test = await startServer();
  const first = await loggedIn(test, "yoda", "jedi");
  const second = await test.connect().login("yoda", "jedi");
  assert.equal(second.code, "already-online");
  assert.deepEqual(second.lines, ["yoda is already logged in"]);
  assert.equal((await first.cmd("ATU")).ok, true);
  assert.equal(test.file("userlog.txt").split("\n").filter(Boolean).length, 1);
});

Deno.test("with --duplicate-login replace the old session is told and closed", async () => {
  await using test = await startServer({ duplicateLogin: "replace" });
  const first = await loggedIn(test, "yoda", "jedi");
  const second = await loggedIn(test, "yoda", "jedi");
  await first.waitFor("You have been logged out: logged in from another location");
  await first.link.closed;
  assert.equal((await second.cmd("ATU")).ok, true);
  assert.equal(test.file("userlog.txt").split("\n").filter(Boolean).length, 1);
});

Deno.test("edits to credentials.txt take effect at the next login attempt", async () => {
  await using test = await startServer();
  test.files.contents.set("credentials.txt", "yoda newpass\n");
  assert.equal((await test.connect().login("yoda", "jedi")).code, "bad-password");
  assert.equal((await test.connect().login("yoda", "newpass")).ok, true);
  assert.deepEqual((await test.connect().login("vader", "sithlord")).lines, [
    "Username does not exist",
  ]);
});

Deno.test("malformed credential lines are reported and skipped, never fatal", async () => {
  await using test = await startServer();
  test.files.contents.set(
    "credentials.txt",
    "yoda jedi\nbroken\n\nvader  two spaces\nhans falcon\n",
  );
  assert.equal((await test.connect().login("hans", "falcon")).ok, true);
  assert.ok(test.logger.warnings.some((w) => w.includes("credentials.txt:2")));
  assert.ok(test.logger.warnings.some((w) => w.includes("credentials.txt:4")));
});

Deno.test("commands before login are refused", async () => {
  await using test = await startServer();
  const client = test.connect();
  await client.hello();
  const reply = await client.cmd("MSG hello");
  assert.equal(reply.ok, false);
  assert.equal(reply.code, "not-allowed");
  assert.equal(test.file("messagelog.txt"), "");
});

Deno.test("others see a login and a logout, except those the subject has blocked", async () => {
  await using test = await startServer();
  const vader = await loggedIn(test, "vader", "sithlord");
  const hans = await loggedIn(test, "hans", "falcon");
  const yoda = await loggedIn(test, "yoda", "jedi");
  await vader.waitFor("yoda logged in");
  await hans.waitFor("yoda logged in");
  await yoda.cmd("block hans");
  await yoda.cmd("OUT");
  await vader.waitFor("yoda logged out");
  await settle();
  assert.ok(!hans.eventLines.includes("yoda logged out"));
});

Deno.test("a lost connection logs the user out exactly as OUT does", async () => {
  await using test = await startServer();
  const vader = await loggedIn(test, "vader", "sithlord", 7000);
  const yoda = await loggedIn(test, "yoda", "jedi", 6666);
  yoda.close();
  await vader.waitFor("yoda logged out");
  await settle();
  assert.match(test.file("userlog.txt"), /^1; .*; vader; 127\.0\.0\.1; 7000\n$/);
});

Deno.test("a session silent for 45 s is dropped; heartbeats keep it alive", async () => {
  await using test = await startServer();
  const quiet = await loggedIn(test, "yoda", "jedi");
  const beating = await loggedIn(test, "vader", "sithlord");
  test.clock.advance(30_000);
  // The link's own heartbeat timer is hours long in tests, so beat by hand.
  beating.link.heartbeat();
  await settle();
  test.clock.advance(15_000);
  await test.server.sweep();
  await quiet.link.closed;
  assert.equal((await beating.cmd("ATU")).ok, true);
  assert.doesNotMatch(test.file("userlog.txt"), /yoda/);
});

Deno.test("login frames share the rate limit, so usernames cannot be probed at full speed", async () => {
  await using test = await startServer({ commandBurst: 10, commandsPerSecond: 1 });
  const client = test.connect();
  await client.hello();
  const replies = await Promise.all(
    Array.from({ length: 20 }, (_, i) => client.link.request({ t: "user", name: `guess${i}` })),
  );
  assert.equal(replies.filter((r) => r.code === "rate-limited").length, 11);
});
