/** The active-user log of lib/server/user_log.ts: its lines, numbering and renumbering. */
import assert from "node:assert/strict";
import { MemoryFiles } from "../../lib/server/files.ts";
import { type ActiveUser, UserLog } from "../../lib/server/user_log.ts";

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
