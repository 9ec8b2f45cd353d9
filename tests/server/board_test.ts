/** The message board commands (MSG, DLT, EDT, RDM) and ATU, OUT, rate limits through the server. */
import assert from "node:assert/strict";
import { MemoryFiles } from "../../lib/server/files.ts";
import { CREDENTIALS, loggedIn, memoryAddress, startServer } from "../../testing/server_fixture.ts";

Deno.test("MSG posts, numbers from 1 and appends the messagelog line", async () => {
  await using test = await startServer();
  const yoda = await loggedIn(test, "yoda", "jedi");
  assert.deepEqual((await yoda.cmd("MSG do or do not, there is no try")).lines, [
    "Message #1 posted at 23 Feb 2021 15:00:00.",
  ]);
  test.clock.advance(1000);
  assert.deepEqual((await yoda.cmd("msg second")).lines, [
    "Message #2 posted at 23 Feb 2021 15:00:01.",
  ]);
  assert.equal(
    test.file("messagelog.txt"),
    "1; 23 Feb 2021 15:00:00; yoda; do or do not, there is no try; no\n" +
      "2; 23 Feb 2021 15:00:01; yoda; second; no\n",
  );
  assert.ok(test.logger.lines.includes(
    'yoda posted MSG #1 "do or do not, there is no try" at 23 Feb 2021 15:00:00.',
  ));
});

Deno.test("MSG without text or with an over-long text shows the usage", async () => {
  await using test = await startServer();
  const yoda = await loggedIn(test, "yoda", "jedi");
  for (const line of ["MSG", "MSG ", `MSG ${"x".repeat(1001)}`]) {
    const reply = await yoda.cmd(line);
    assert.equal(reply.ok, false, line);
    assert.match(reply.lines[0]!, /Usage: MSG <message>/);
  }
  assert.equal((await yoda.cmd(`MSG ${"é".repeat(1000)}`)).ok, true);
});

Deno.test("DLT checks number, then timestamp, then author, each with its own error", async () => {
  await using test = await startServer();
  const yoda = await loggedIn(test, "yoda", "jedi");
  const vader = await loggedIn(test, "vader", "sithlord");
  await yoda.cmd("MSG one");
  const ts = "23 Feb 2021 15:00:00";
  assert.deepEqual((await vader.cmd(`DLT #2 ${ts}`)).lines, ["Message #2 does not exist."]);
  assert.deepEqual((await vader.cmd("DLT #1 23 Feb 2021 15:00:01")).lines, [
    "Timestamp 23 Feb 2021 15:00:01 does not match Message #1.",
  ]);
  assert.deepEqual((await vader.cmd(`DLT #1 ${ts}`)).lines, ["Unauthorised to delete Message #1."]);
  assert.deepEqual((await vader.cmd(`EDT #1 ${ts} mine now`)).lines, [
    "Unauthorised to edit Message #1.",
  ]);
  assert.match(test.file("messagelog.txt"), /^1; 23 Feb 2021 15:00:00; yoda; one; no\n$/);
});

Deno.test("DLT accepts #n and n, and renumbers later messages contiguously", async () => {
  await using test = await startServer();
  const yoda = await loggedIn(test, "yoda", "jedi");
  const hans = await loggedIn(test, "hans", "falcon");
  await yoda.cmd("MSG first");
  test.clock.advance(1000);
  await hans.cmd("MSG second");
  test.clock.advance(1000);
  await yoda.cmd("MSG third");
  test.clock.advance(5000);
  assert.deepEqual((await yoda.cmd("DLT 1 23 Feb 2021 15:00:00")).lines, [
    "Message #1 deleted at 23 Feb 2021 15:00:07.",
  ]);
  assert.equal(
    test.file("messagelog.txt"),
    "1; 23 Feb 2021 15:00:01; hans; second; no\n2; 23 Feb 2021 15:00:02; yoda; third; no\n",
  );
  assert.deepEqual((await yoda.cmd("DLT #2 23 Feb 2021 15:00:02")).lines, [
    "Message #2 deleted at 23 Feb 2021 15:00:07.",
  ]);
  assert.deepEqual((await yoda.cmd("MSG fourth")).lines, [
    "Message #2 posted at 23 Feb 2021 15:00:07.",
  ]);
});

Deno.test("EDT replaces text and timestamp and marks the message edited", async () => {
  await using test = await startServer();
  const yoda = await loggedIn(test, "yoda", "jedi");
  await yoda.cmd("MSG first");
  await yoda.cmd("MSG second");
  test.clock.advance(60_000);
  assert.deepEqual((await yoda.cmd("EDT #1 23 Feb 2021 15:00:00 first, edited")).lines, [
    "Message #1 edited at 23 Feb 2021 15:01:00.",
  ]);
  assert.equal(
    test.file("messagelog.txt"),
    "1; 23 Feb 2021 15:01:00; yoda; first, edited; yes\n2; 23 Feb 2021 15:00:00; yoda; second; no\n",
  );
  // The old timestamp no longer matches.
  assert.equal((await yoda.cmd("EDT #1 23 Feb 2021 15:00:00 again")).ok, false);
});

Deno.test("RDM lists strictly later messages oldest first, including the reader's own", async () => {
  await using test = await startServer();
  const yoda = await loggedIn(test, "yoda", "jedi");
  const hans = await loggedIn(test, "hans", "falcon");
  await yoda.cmd("MSG Hello");
  test.clock.advance(1000);
  await hans.cmd("MSG Hi there");
  test.clock.advance(1000);
  await yoda.cmd("EDT #1 23 Feb 2021 15:00:00 Hello again");
  assert.deepEqual((await hans.cmd("RDM 23 Feb 2021 15:00:00")).lines, [
    '#2; hans: "Hi there" posted at 23 Feb 2021 15:00:01.',
    '#1; yoda: "Hello again" edited at 23 Feb 2021 15:00:02.',
  ]);
  assert.deepEqual((await hans.cmd("RDM 23 Feb 2021 15:00:02")).lines, [
    "No new message since 23 Feb 2021 15:00:02.",
  ]);
  const bad = await hans.cmd("RDM yesterday");
  assert.equal(bad.code, "usage");
  assert.match(bad.lines[0]!, /Usage: RDM/);
});

Deno.test("RDM of a large board arrives complete in several frames", async () => {
  await using test = await startServer({ commandBurst: 10_000 });
  const yoda = await loggedIn(test, "yoda", "jedi");
  for (let i = 1; i <= 300; i++) {
    await yoda.cmd(`MSG ${String(i).padStart(4, "0")} ${"x".repeat(900)}`);
  }
  const reply = await yoda.cmd("RDM 01 Jan 2000 00:00:00");
  assert.equal(reply.lines.length, 300);
  assert.match(reply.lines[299]!, /^#300; yoda: "0300 x+" posted at/);
});

Deno.test("ATU lists the other active users with address and UDP port", async () => {
  await using test = await startServer();
  const yoda = await loggedIn(test, "yoda", "jedi", 6666);
  assert.deepEqual((await yoda.cmd("ATU")).lines, ["No other active user."]);
  test.clock.advance(5000);
  const hans = test.connect(memoryAddress("10.1.2.3:4000"));
  await hans.login("hans", "falcon", 7777);
  assert.deepEqual((await yoda.cmd("atu")).lines, [
    "hans, 10.1.2.3, 7777, active since 23 Feb 2021 15:00:05.",
  ]);
});

Deno.test("OUT says goodbye, removes the userlog line and renumbers the rest", async () => {
  await using test = await startServer();
  const yoda = await loggedIn(test, "yoda", "jedi", 1);
  await loggedIn(test, "vader", "sithlord", 2);
  await loggedIn(test, "hans", "falcon", 3);
  await yoda.cmd("MSG stays");
  assert.deepEqual((await yoda.cmd("OUT")).lines, ["Bye, yoda!"]);
  await yoda.link.closed;
  const lines = test.file("userlog.txt").trimEnd().split("\n");
  assert.deepEqual(lines.map((l) => l.split("; ").filter((_, i) => i !== 1)), [
    ["1", "vader", "127.0.0.1", "2"],
    ["2", "hans", "127.0.0.1", "3"],
  ]);
  assert.match(test.file("messagelog.txt"), /stays/);
});

Deno.test("logout is an alias of OUT and command words are case-insensitive", async () => {
  await using test = await startServer();
  const yoda = await loggedIn(test, "yoda", "jedi");
  assert.equal((await yoda.cmd("Msg hi")).ok, true);
  assert.deepEqual((await yoda.cmd("LOGOUT")).lines, ["Bye, yoda!"]);
});

Deno.test("an unknown command gets the invalid-command error", async () => {
  await using test = await startServer();
  const yoda = await loggedIn(test, "yoda", "jedi");
  assert.deepEqual((await yoda.cmd("FLY away")).lines, ["Error. Invalid command!"]);
  assert.deepEqual((await yoda.cmd("ATU extra")).lines, ["Invalid usage. Usage: ATU"]);
});

Deno.test("concurrent posts from many clients get distinct, contiguous numbers", async () => {
  await using test = await startServer();
  const names = ["yoda", "vader", "hans", "obiwan"] as const;
  const passwords = { yoda: "jedi", vader: "sithlord", hans: "falcon", obiwan: "hellothere" };
  const clients = await Promise.all(names.map((n) => loggedIn(test, n, passwords[n])));
  const replies = await Promise.all(
    clients.flatMap((c, i) => Array.from({ length: 25 }, (_, j) => c.cmd(`MSG ${names[i]} ${j}`))),
  );
  const numbers = replies.map((r) => Number(/#(\d+)/.exec(r.lines[0]!)![1])).sort((a, b) => a - b);
  assert.deepEqual(numbers, Array.from({ length: 100 }, (_, i) => i + 1));
  const log = test.file("messagelog.txt").trimEnd().split("\n");
  assert.deepEqual(log.map((l) => Number(l.split(";")[0])), numbers);
});

Deno.test("a client that floods frames is rate limited without affecting others", async () => {
  await using test = await startServer({ commandBurst: 20, commandsPerSecond: 10 });
  const flooder = await loggedIn(test, "vader", "sithlord");
  const yoda = await loggedIn(test, "yoda", "jedi");
  const replies = await Promise.all(Array.from({ length: 50 }, () => flooder.cmd("MSG spam")));
  // The budget counts every frame: logging in (hello, user, pass) used 3 of the 20.
  assert.equal(replies.filter((r) => r.ok).length, 17);
  assert.equal(replies.filter((r) => r.code === "rate-limited").length, 33);
  assert.equal((await yoda.cmd("MSG still here")).ok, true);
  test.clock.advance(1000);
  assert.equal((await flooder.cmd("MSG later")).ok, true);
});

/** Memory files whose next `failures` writes fail, as a full or read-only disk would. */
class FailingFiles extends MemoryFiles {
  failures = 0;
  #maybeFail(): void {
    if (this.failures > 0) {
      this.failures--;
      throw new Deno.errors.PermissionDenied("disk says no");
    }
  }
  override append(path: string, text: string): Promise<void> {
    try {
      this.#maybeFail();
    } catch (error) {
      return Promise.reject(error);
    }
    return super.append(path, text);
  }
  override replace(path: string, text: string): Promise<void> {
    try {
      this.#maybeFail();
    } catch (error) {
      return Promise.reject(error);
    }
    return super.replace(path, text);
  }
}

Deno.test("failed log writes are reported, never fatal, and the files heal at the next write", async () => {
  const files = new FailingFiles();
  files.contents.set("credentials.txt", CREDENTIALS);
  await using test = await startServer({ files });
  const yoda = await loggedIn(test, "yoda", "jedi", 6666);
  files.failures = 1;
  assert.deepEqual((await yoda.cmd("MSG lost on disk")).lines, [
    "Message #1 posted at 23 Feb 2021 15:00:00.",
  ]);
  assert.equal(test.file("messagelog.txt"), "");
  assert.ok(test.logger.warnings.some((w) => w.includes("Could not write messagelog.txt")));
  await yoda.cmd("MSG second");
  assert.equal(
    test.file("messagelog.txt"),
    "1; 23 Feb 2021 15:00:00; yoda; lost on disk; no\n2; 23 Feb 2021 15:00:00; yoda; second; no\n",
  );
  files.failures = 1;
  const vader = await loggedIn(test, "vader", "sithlord", 7000);
  await vader.cmd("OUT");
  assert.match(test.file("userlog.txt"), /^1; .*; yoda; 127\.0\.0\.1; 6666\n$/);
});
