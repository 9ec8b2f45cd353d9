/** The active-user log of lib/server/user_log.ts: its lines, numbering and renumbering. */
import assert from "node:assert/strict";
import { MemoryFiles } from "../../lib/server/files.ts";
import { type ActiveUser, UserLog } from "../../lib/server/user_log.ts";
import { settleMicrotasks, SlowFiles } from "../../testing/slow_files.ts";

const LOG = "userlog.txt";
const T0 = new Date(2021, 1, 19, 21, 30, 4).getTime();

function user(username: string, offsetSeconds = 0, ip = "129.64.1.11", udpPort = 6666) {
  return { username, loginTime: T0 + offsetSeconds * 1000, ip, udpPort } satisfies ActiveUser;
}

function setUp() {
  const files = new MemoryFiles();
  const log = new UserLog(files, LOG);
  return { files, log, text: () => files.contents.get(LOG) };
}

Deno.test("UserLog.add() writes the spec's exact line", async () => {
  const { log, text } = setUp();
  await log.add(user("yoda"));
  assert.equal(text(), "1; 19 Feb 2021 21:30:04; yoda; 129.64.1.11; 6666\n");
});

Deno.test("UserLog.add() numbers users in login order", async () => {
  const { log, text } = setUp();
  await log.add(user("yoda"));
  await log.add(user("hans", 60, "10.0.0.2", 7777));
  await log.add(user("leia", 3600, "::1", 0));
  assert.equal(
    text(),
    "1; 19 Feb 2021 21:30:04; yoda; 129.64.1.11; 6666\n" +
      "2; 19 Feb 2021 21:31:04; hans; 10.0.0.2; 7777\n" +
      "3; 19 Feb 2021 22:30:04; leia; ::1; 0\n",
  );
  assert.deepEqual(log.users.map((u) => u.username), ["yoda", "hans", "leia"]);
});

Deno.test("UserLog.add() drops milliseconds of the login time", async () => {
  const { log, text } = setUp();
  await log.add({ ...user("yoda"), loginTime: T0 + 999 });
  assert.equal(text(), "1; 19 Feb 2021 21:30:04; yoda; 129.64.1.11; 6666\n");
});

Deno.test("UserLog.remove() removes the line and renumbers later ones", async () => {
  const { log, text } = setUp();
  await log.add(user("yoda"));
  await log.add(user("hans", 1));
  await log.add(user("leia", 2));
  await log.remove("yoda");
  assert.equal(
    text(),
    "1; 19 Feb 2021 21:30:05; hans; 129.64.1.11; 6666\n" +
      "2; 19 Feb 2021 21:30:06; leia; 129.64.1.11; 6666\n",
  );
  await log.add(user("luke", 3));
  assert.equal(
    text(),
    "1; 19 Feb 2021 21:30:05; hans; 129.64.1.11; 6666\n" +
      "2; 19 Feb 2021 21:30:06; leia; 129.64.1.11; 6666\n" +
      "3; 19 Feb 2021 21:30:07; luke; 129.64.1.11; 6666\n",
  );
});

Deno.test("UserLog.remove() of the middle and last users keeps the rest in order", async () => {
  const { log, text } = setUp();
  for (const [i, name] of ["a", "b", "c", "d"].entries()) await log.add(user(name, i));
  await log.remove("b");
  await log.remove("d");
  assert.equal(
    text(),
    "1; 19 Feb 2021 21:30:04; a; 129.64.1.11; 6666\n" +
      "2; 19 Feb 2021 21:30:06; c; 129.64.1.11; 6666\n",
  );
});

Deno.test("UserLog.remove() of the only user leaves an empty file", async () => {
  const { log, text } = setUp();
  await log.add(user("yoda"));
  await log.remove("yoda");
  assert.equal(text(), "");
  assert.deepEqual(log.users, []);
});

Deno.test("UserLog.remove() of someone not logged in changes nothing", async () => {
  const { log, text } = setUp();
  await log.add(user("yoda"));
  await log.remove("hans");
  await log.remove("Yoda");
  assert.equal(text(), "1; 19 Feb 2021 21:30:04; yoda; 129.64.1.11; 6666\n");
  assert.equal(log.users.length, 1);
});

Deno.test("UserLog.reset() empties the list and the file", async () => {
  const { files, log, text } = setUp();
  files.contents.set(LOG, "1; stale\n");
  await log.reset();
  assert.equal(text(), "");
  await log.add(user("yoda"));
  await log.reset();
  assert.equal(text(), "");
  assert.deepEqual(log.users, []);
});

Deno.test("UserLog writes concurrent logins and logouts in the order they happened", async () => {
  const { log, text } = setUp();
  await Promise.all([
    log.add(user("a")),
    log.add(user("b")),
    log.remove("a"),
    log.add(user("c")),
  ]);
  assert.equal(
    text(),
    "1; 19 Feb 2021 21:30:04; b; 129.64.1.11; 6666\n" +
      "2; 19 Feb 2021 21:30:04; c; 129.64.1.11; 6666\n",
  );
});

/** A userlog on files whose writes finish only when the test says, with users a, b, c, d, e. */
async function slowLog() {
  const files = new SlowFiles();
  const log = new UserLog(files, LOG);
  const adds = ["a", "b", "c", "d", "e"].map((name, i) => log.add(user(name, i)));
  while (files.waiting > 0) {
    files.release();
    await settleMicrotasks();
  }
  await Promise.all(adds);
  files.started.length = 0;
  return { files, log, text: () => files.inner.contents.get(LOG) };
}

Deno.test("UserLog.remove() of a burst of users while a write is in flight is one more write", async () => {
  const { files, log, text } = await slowLog();
  const first = log.remove("a");
  await settleMicrotasks();
  const burst = ["b", "c", "d"].map((name) => log.remove(name));
  files.release();
  await first;
  await settleMicrotasks();
  // The three removals went out together, rendered once from the list as it then stood.
  assert.deepEqual(files.started, [
    "replace " + "1; 19 Feb 2021 21:30:05; b; 129.64.1.11; 6666\n" +
    "2; 19 Feb 2021 21:30:06; c; 129.64.1.11; 6666\n" +
    "3; 19 Feb 2021 21:30:07; d; 129.64.1.11; 6666\n" +
    "4; 19 Feb 2021 21:30:08; e; 129.64.1.11; 6666\n",
    "replace 1; 19 Feb 2021 21:30:08; e; 129.64.1.11; 6666\n",
  ]);
  files.release();
  await Promise.all(burst);
  assert.equal(text(), "1; 19 Feb 2021 21:30:08; e; 129.64.1.11; 6666\n");
});

Deno.test("UserLog.remove() resolves only once a write that left the user out has landed", async () => {
  const { files, log, text } = await slowLog();
  const done: string[] = [];
  const a = log.remove("a").then(() => done.push("a"));
  await settleMicrotasks();
  const b = log.remove("b").then(() => done.push("b"));
  await settleMicrotasks();
  assert.deepEqual(done, []);
  files.release();
  await a;
  await settleMicrotasks();
  // The first write (without a) landed; b's is still in flight, so b's caller is not told yet.
  assert.deepEqual(done, ["a"]);
  assert.match(text()!, /^1; [^\n]*; b;/);
  files.release();
  await b;
  assert.deepEqual(done, ["a", "b"]);
  assert.doesNotMatch(text()!, /; [ab];/);
});

Deno.test("UserLog.reset() with many users is one write", async () => {
  const { files, log, text } = await slowLog();
  const reset = log.reset();
  await settleMicrotasks();
  files.release();
  await reset;
  assert.deepEqual(files.started, ["replace "]);
  assert.equal(text(), "");
  assert.equal(log.size, 0);
});

Deno.test("UserLog: a login after logouts that are still being written is numbered after the rest", async () => {
  const { files, log, text } = await slowLog();
  const removes = [log.remove("a"), log.remove("c")];
  const add = log.add(user("f", 10));
  while (files.waiting > 0) {
    files.release();
    await settleMicrotasks();
  }
  await Promise.all([...removes, add]);
  assert.equal(
    text(),
    "1; 19 Feb 2021 21:30:05; b; 129.64.1.11; 6666\n" +
      "2; 19 Feb 2021 21:30:07; d; 129.64.1.11; 6666\n" +
      "3; 19 Feb 2021 21:30:08; e; 129.64.1.11; 6666\n" +
      "4; 19 Feb 2021 21:30:14; f; 129.64.1.11; 6666\n",
  );
});
