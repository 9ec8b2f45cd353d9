/**
 * Limits by source address (lib/server/throttle.ts): the address keys, the token bucket on an
 * injected clock, bounded memory; then through the server: failed logins, registrations and
 * connections waiting to log in, each limited per address while other addresses carry on.
 */
import assert from "node:assert/strict";
import { FakeClock } from "../../lib/shared/clock.ts";
import { addressKey, AddressThrottle } from "../../lib/server/throttle.ts";
import { TOO_MANY_FAILURES, TOO_MANY_REGISTRATIONS } from "../../lib/server/login.ts";
import {
  memoryAddress,
  settle,
  startServer,
  type TestServer,
} from "../../testing/server_fixture.ts";

const MINUTE = 60_000;

Deno.test("addressKey() keeps IPv4 and non-IP names as they are", () => {
  assert.equal(addressKey("129.64.1.11"), "129.64.1.11");
  assert.equal(addressKey("127.0.0.1"), "127.0.0.1");
  assert.equal(addressKey("memory"), "memory");
  assert.equal(addressKey("999.1.1.1"), "999.1.1.1");
});

Deno.test("addressKey() groups IPv6 by its /64 prefix, however it is written", () => {
  const key = "2001:db8:0:1::/64";
  for (
    const host of [
      "2001:db8:0:1::1",
      "2001:0db8:0000:0001:ffff:ffff:ffff:ffff",
      "2001:DB8:0:1:abcd::",
      "[2001:db8:0:1::42]",
      "2001:db8:0:1::7%eth0",
      "2001:db8:0:1:0:ffff:1.2.3.4",
    ]
  ) {
    assert.equal(addressKey(host), key, host);
  }
  assert.equal(addressKey("2001:db8:0:2::1"), "2001:db8:0:2::/64");
  assert.equal(addressKey("::1"), "0:0:0:0::/64");
  assert.equal(addressKey("fe80::1"), "fe80:0:0:0::/64");
});

Deno.test("addressKey() counts an IPv4-mapped IPv6 address as its IPv4 address", () => {
  assert.equal(addressKey("::ffff:10.0.0.7"), "10.0.0.7");
  assert.equal(addressKey("::FFFF:10.0.0.7"), "10.0.0.7");
  assert.equal(addressKey("::ffff:a00:7"), "10.0.0.7");
  assert.equal(addressKey("0:0:0:0:0:ffff:10.0.0.7"), "10.0.0.7");
});

Deno.test("addressKey() leaves malformed IPv6-looking text as it is", () => {
  for (const host of ["1:2:3:4:5:6:7:8:9", "1::2::3", "12345::1", "::ffff:1.2.3", "g::1"]) {
    assert.equal(addressKey(host), host);
  }
});

function throttle(limit: number, options: { maxAddresses?: number } = {}) {
  const clock = new FakeClock();
  return { clock, throttle: new AddressThrottle({ limit, windowMs: MINUTE }, clock, options) };
}

Deno.test("AddressThrottle allows the limit, then refuses without counting", () => {
  const { throttle: t } = throttle(3);
  for (let i = 0; i < 3; i++) assert.equal(t.take("10.0.0.1"), true);
  assert.equal(t.allows("10.0.0.1"), false);
  assert.equal(t.take("10.0.0.1"), false);
  assert.equal(t.allows("10.0.0.2"), true);
  assert.equal(t.take("10.0.0.2"), true);
});

Deno.test("AddressThrottle refills at limit per window and forgets a quiet address", () => {
  const { throttle: t, clock } = throttle(3);
  for (let i = 0; i < 3; i++) t.take("10.0.0.1");
  clock.advance(MINUTE / 3 - 1);
  assert.equal(t.take("10.0.0.1"), false);
  clock.advance(1);
  assert.equal(t.take("10.0.0.1"), true);
  assert.equal(t.take("10.0.0.1"), false);
  clock.advance(MINUTE);
  assert.equal(t.allows("10.0.0.1"), true);
  assert.equal(t.size, 0);
});

Deno.test("AddressThrottle counts an IPv6 /64 as one address, and mapped IPv4 as IPv4", () => {
  const { throttle: t } = throttle(2);
  assert.equal(t.take("2001:db8::1"), true);
  assert.equal(t.take("2001:db8::2"), true);
  assert.equal(t.take("2001:db8::ffff:3"), false);
  assert.equal(t.take("2001:db8:0:1::1"), true);
  assert.equal(t.take("::ffff:10.0.0.1"), true);
  assert.equal(t.take("10.0.0.1"), true);
  assert.equal(t.take("::ffff:10.0.0.1"), false);
});

Deno.test("AddressThrottle gives back a refund, never above the limit", () => {
  const { throttle: t } = throttle(2);
  t.take("10.0.0.1");
  t.take("10.0.0.1");
  t.refund("10.0.0.1");
  assert.equal(t.take("10.0.0.1"), true);
  assert.equal(t.take("10.0.0.1"), false);
  t.refund("10.0.0.9");
  assert.equal(t.size, 1);
});

Deno.test("AddressThrottle reports a refusal once per window per address", () => {
  const { throttle: t, clock } = throttle(1);
  assert.equal(t.shouldReport("10.0.0.1"), true);
  assert.equal(t.shouldReport("10.0.0.1"), false);
  assert.equal(t.shouldReport("10.0.0.2"), true);
  clock.advance(MINUTE - 1);
  assert.equal(t.shouldReport("10.0.0.1"), false);
  clock.advance(1);
  assert.equal(t.shouldReport("10.0.0.1"), true);
});

Deno.test("AddressThrottle with limit 0 limits nothing and remembers nothing", () => {
  const { throttle: t } = throttle(0);
  for (let i = 0; i < 1000; i++) assert.equal(t.take("10.0.0.1"), true);
  assert.equal(t.size, 0);
});

Deno.test("AddressThrottle stays bounded under a flood of distinct addresses", () => {
  const { throttle: t, clock } = throttle(5, { maxAddresses: 100 });
  for (let i = 0; i < 100_000; i++) {
    t.take(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`);
    t.take(`2001:db8:${i >> 16}:${(i & 0xffff).toString(16)}::1`);
    if (i % 1000 === 0) clock.advance(1);
  }
  assert.ok(t.size <= 100, `size ${t.size}`);
  // The most recent addresses are still counted.
  assert.equal(t.allows("2001:db8:1:869f::9"), true);
  for (let i = 0; i < 4; i++) t.take("2001:db8:1:869f::9");
  assert.equal(t.allows("2001:db8:1:869f::9"), false);
});

// ---- Through the server (in-memory connections, each from the address the test names) ----

/** Counts the password checks the server makes. */
function countChecks(test: TestServer): () => number {
  const accounts = test.server.login.accounts;
  const check = accounts.check.bind(accounts);
  let checks = 0;
  accounts.check = (user, password) => {
    checks++;
    return check(user, password);
  };
  return () => checks;
}

/** Opens a connection from `ip` and sends `user`; returns the client. */
async function askPassword(test: TestServer, ip: string, user: string) {
  const client = test.connect(memoryAddress(`${ip}:4000`));
  await client.hello();
  assert.equal((await client.link.request({ t: "user", name: user })).ok, true);
  return client;
}

Deno.test("an address over its failed-login limit is refused without a check; another is not", async () => {
  await using test = await startServer({ maxFailures: 5, maxFailuresPerIp: 4 });
  const checks = countChecks(test);
  // Spread over accounts, as a guesser would, so that no account lockout intervenes.
  const users = ["yoda", "vader", "hans", "obiwan"];
  for (const user of users) {
    const client = await askPassword(test, "10.0.0.66", user);
    const reply = await client.link.request({ t: "pass", password: "guess", udpPort: 1 });
    assert.equal(reply.code, "bad-password");
  }
  assert.equal(checks(), 4);
  const client = await askPassword(test, "10.0.0.66", "yoda");
  for (const password of ["guess", "jedi"]) {
    const refused = await client.link.request({ t: "pass", password, udpPort: 1 });
    assert.equal(refused.code, "throttled");
    assert.deepEqual(refused.lines, [TOO_MANY_FAILURES]);
  }
  assert.equal(checks(), 4, "the throttled attempts were not checked");
  // The same /64 or mapped form is the same address; another address is not.
  const mapped = await askPassword(test, "::ffff:10.0.0.66", "hans");
  const again = await mapped.link.request({ t: "pass", password: "falcon", udpPort: 1 });
  assert.equal(again.code, "throttled");
  const other = await test.connect(memoryAddress("10.0.0.67:4000")).login("yoda", "jedi");
  assert.equal(other.ok, true);
  // One log line for the address, however many refusals.
  const lines = test.logger.warnings.filter((line) => line.includes("Refusing logins"));
  assert.deepEqual(lines, [
    "Refusing logins from 10.0.0.66 for now: over 4 failed attempts per minute",
  ]);
  // The bucket refills: a minute later the address may try again.
  test.clock.advance(MINUTE);
  assert.equal(
    (await test.connect(memoryAddress("10.0.0.66:4001")).login("hans", "falcon")).ok,
    true,
  );
});

Deno.test("right passwords do not use up an address's failed-login budget", async () => {
  await using test = await startServer({ maxFailuresPerIp: 2 });
  for (let i = 0; i < 5; i++) {
    const client = test.connect(memoryAddress("10.0.0.5:4000"));
    assert.equal((await client.login("yoda", "jedi")).ok, true);
    await client.cmd("OUT");
  }
  const client = test.connect(memoryAddress("10.0.0.5:4000"));
  assert.equal((await client.login("hans", "wrong")).code, "bad-password");
});

Deno.test("a throttled attempt does not count toward the account's lockout", async () => {
  await using test = await startServer({ maxFailures: 2, maxFailuresPerIp: 1 });
  const client = await askPassword(test, "10.0.0.66", "yoda");
  assert.equal(
    (await client.link.request({ t: "pass", password: "x", udpPort: 1 })).code,
    "bad-password",
  );
  for (let i = 0; i < 3; i++) {
    assert.equal(
      (await client.link.request({ t: "pass", password: "x", udpPort: 1 })).code,
      "throttled",
    );
  }
  assert.equal(test.server.login.guard.isLocked("yoda"), false);
});

Deno.test("registrations are limited per address; another address may still register", async () => {
  await using test = await startServer({ allowRegister: true, maxRegistrationsPerIp: 2 });
  const register = async (ip: string, name: string) => {
    const client = test.connect(memoryAddress(`${ip}:4000`));
    await client.hello();
    const asked = await client.link.request({ t: "user", name });
    assert.equal(asked.data?.need, "new-password");
    return client.link.request({ t: "pass", password: "pw", udpPort: 1 });
  };
  assert.equal((await register("10.0.0.8", "new1")).ok, true);
  assert.equal((await register("10.0.0.8", "new2")).ok, true);
  const refused = await register("10.0.0.8", "new3");
  assert.equal(refused.code, "throttled");
  assert.deepEqual(refused.lines, [TOO_MANY_REGISTRATIONS]);
  assert.ok(!test.file("credentials.txt").includes("new3"));
  assert.equal((await register("10.0.0.9", "new4")).ok, true);
  assert.ok(
    test.logger.warnings.includes(
      "Refusing registrations from 10.0.0.8 for now: over 2 new accounts per hour",
    ),
  );
  test.clock.advance(30 * MINUTE);
  assert.equal((await register("10.0.0.8", "new5")).ok, true);
});

Deno.test("connections waiting to log in are limited per address: the oldest goes", async () => {
  await using test = await startServer({ maxPendingPerIp: 3 });
  const crowd = Array.from({ length: 5 }, (_, i) => test.connect(memoryAddress(`10.0.0.7:${i}`)));
  await settle();
  assert.equal(await crowd[0]!.link.closed, "Connection to server lost");
  assert.equal(await crowd[1]!.link.closed, "Connection to server lost");
  // The newest three from that address, and anyone from elsewhere, can log in.
  assert.equal((await crowd[4]!.login("yoda", "jedi")).ok, true);
  assert.equal((await crowd[3]!.login("vader", "sithlord")).ok, true);
  const elsewhere = Array.from(
    { length: 3 },
    (_, i) => test.connect(memoryAddress(`10.0.0.8:${i}`)),
  );
  assert.equal((await elsewhere[0]!.login("hans", "falcon")).ok, true);
  const lines = test.logger.warnings.filter((line) => line.includes("waiting to log in"));
  assert.deepEqual(lines, ["Closing connections waiting to log in from 10.0.0.7: over 3 at once"]);
  assert.equal(test.server.connectionCount, 3 + 3);
});

Deno.test("logged-in users do not count as waiting", async () => {
  await using test = await startServer({ maxPendingPerIp: 1 });
  for (const [user, password] of [["yoda", "jedi"], ["vader", "sithlord"], ["hans", "falcon"]]) {
    const client = test.connect(memoryAddress("10.0.0.7:1"));
    assert.equal((await client.login(user!, password!)).ok, true);
  }
  assert.equal(test.server.state.roster.online.size, 3);
});
