/** Messaging through the server: message, broadcast, whoelse, block, presence and accounts. */
import assert from "node:assert/strict";
import {
  loggedIn,
  PASSWORDS,
  settle,
  startServer,
  type TestServer,
} from "../../testing/server_fixture.ts";

async function everyone(test: TestServer, names: string[]) {
  const clients = [];
  for (const name of names) clients.push(await loggedIn(test, name, PASSWORDS[name]!));
  return clients;
}

Deno.test("message reaches an online user at once as <from>: <text>", async () => {
  await using test = await startServer();
  const [yoda, vader] = await everyone(test, ["yoda", "vader"]);
  assert.deepEqual((await yoda!.cmd("message vader I am not your father")).lines, [
    "Message sent to vader.",
  ]);
  await vader!.waitFor("yoda: I am not your father");
});

Deno.test("message to an offline user is queued and delivered at login, oldest first", async () => {
  await using test = await startServer();
  const [yoda, hans] = await everyone(test, ["yoda", "hans"]);
  assert.deepEqual((await yoda!.cmd("message vader one")).lines, [
    "vader is offline; the message will be delivered when they log in.",
  ]);
  await hans!.cmd("message vader two");
  await yoda!.cmd("message vader three");
  const vader = await loggedIn(test, "vader", "sithlord");
  await vader.waitFor("yoda: three");
  const messages = vader.events.filter((e) => e.kind === "message").flatMap((e) => e.lines);
  assert.deepEqual(messages, ["yoda: one", "hans: two", "yoda: three"]);
  // Delivered once: a second login gets nothing more.
  await vader.cmd("OUT");
  await yoda!.cmd("message vader four");
  const again = await loggedIn(test, "vader", "sithlord");
  await again.waitFor("yoda: four");
  await settle();
  assert.deepEqual(again.events.filter((e) => e.kind === "message").flatMap((e) => e.lines), [
    "yoda: four",
  ]);
});

Deno.test("a message's ref reaches the recipient, online or from the offline queue", async () => {
  await using test = await startServer();
  const [yoda, hans] = await everyone(test, ["yoda", "hans"]);
  const ref = "00ff10aa7b3c9d0e";
  await yoda!.link.request({ t: "cmd", line: "message hans relayed", ref });
  const online = await hans!.waitFor("yoda: relayed");
  assert.deepEqual(online.data, { from: "yoda", ref });
  await yoda!.link.request({ t: "cmd", line: "message vader kept for later", ref: "1" });
  await yoda!.cmd("message vader no ref");
  const vader = await loggedIn(test, "vader", "sithlord");
  await vader.waitFor("yoda: no ref");
  const offline = vader.events.filter((e) => e.kind === "message");
  assert.deepEqual(offline.map((e) => e.lines), [["yoda: kept for later"], ["yoda: no ref"]]);
  assert.deepEqual(offline[0]?.data, { from: "yoda", ref: "1" });
  // A stored message without a ref gets one, so a copy delivered twice is shown once.
  const generated = offline[1]?.data as { from?: unknown; ref?: unknown } | undefined;
  assert.deepEqual(Object.keys(generated ?? {}).sort(), ["from", "ref"]);
  assert.equal(generated?.from, "yoda");
  assert.match(String(generated?.ref), /^o[0-9a-f]{16}$/);
});

Deno.test("a ref on anything but a direct message goes no further", async () => {
  await using test = await startServer();
  const [yoda, hans] = await everyone(test, ["yoda", "hans"]);
  await yoda!.link.request({ t: "cmd", line: "broadcast to all", ref: "abc" });
  const event = await hans!.waitFor("yoda: to all");
  assert.deepEqual(event.data, { from: "yoda" });
  assert.equal((await yoda!.link.request({ t: "cmd", line: "MSG board", ref: "abc" })).ok, true);
});

Deno.test("message to an unknown user or to oneself is an error", async () => {
  await using test = await startServer();
  const [yoda] = await everyone(test, ["yoda"]);
  assert.deepEqual((await yoda!.cmd("message darth hi")).lines, ["User darth does not exist."]);
  assert.deepEqual((await yoda!.cmd("message yoda hi")).lines, ["You cannot message yourself."]);
  assert.equal((await yoda!.cmd("message vader")).code, "usage");
});

Deno.test("offline messages per recipient are bounded with a clear error", async () => {
  await using test = await startServer({ mailboxLimit: 3 });
  const [yoda] = await everyone(test, ["yoda"]);
  for (let i = 0; i < 3; i++) assert.equal((await yoda!.cmd(`message vader ${i}`)).ok, true);
  const full = await yoda!.cmd("message vader overflow");
  assert.equal(full.ok, false);
  assert.match(full.lines[0]!, /vader has too many messages waiting \(3\)/);
});

Deno.test("one sender may hold only 20 of an offline user's 100 slots; others still get through", async () => {
  await using test = await startServer();
  const [yoda, hans] = await everyone(test, ["yoda", "hans"]);
  for (let i = 0; i < 20; i++) assert.equal((await yoda!.cmd(`message vader ${i}`)).ok, true);
  const over = await yoda!.cmd("message vader one too many");
  assert.equal(over.ok, false);
  assert.equal(over.code, "failed");
  assert.deepEqual(over.lines, [
    "You already have 20 messages waiting for vader; wait until they log in.",
  ]);
  assert.equal((await hans!.cmd("message vader still room for me")).ok, true);
  const vader = await loggedIn(test, "vader", "sithlord");
  await vader.waitFor("hans: still room for me");
  assert.equal(vader.eventLines.filter((line) => line.startsWith("yoda: ")).length, 20);
  await vader.cmd("OUT");
  assert.equal((await yoda!.cmd("message vader after they read")).ok, true);
});

Deno.test("the per-sender share is configurable (mailboxPerSender)", async () => {
  await using test = await startServer({ mailboxPerSender: 2 });
  const [yoda] = await everyone(test, ["yoda"]);
  for (let i = 0; i < 2; i++) assert.equal((await yoda!.cmd(`message vader ${i}`)).ok, true);
  assert.deepEqual((await yoda!.cmd("message vader 3")).lines, [
    "You already have 2 messages waiting for vader; wait until they log in.",
  ]);
});

Deno.test("broadcast reaches every online user but the sender; never stored", async () => {
  await using test = await startServer();
  const [yoda, vader, hans] = await everyone(test, ["yoda", "vader", "hans"]);
  assert.deepEqual((await yoda!.cmd("broadcast hello all")).lines, [
    "Message broadcast to 2 users.",
  ]);
  await vader!.waitFor("yoda: hello all");
  await hans!.waitFor("yoda: hello all");
  await settle();
  assert.ok(!yoda!.eventLines.includes("yoda: hello all"));
  const obiwan = await loggedIn(test, "obiwan", "hellothere");
  await settle();
  assert.ok(!obiwan.eventLines.includes("yoda: hello all"));
});

Deno.test("whoelse lists the others; online is its alias", async () => {
  await using test = await startServer();
  const [yoda] = await everyone(test, ["yoda"]);
  assert.deepEqual((await yoda!.cmd("whoelse")).lines, ["No other user is online."]);
  await everyone(test, ["vader", "hans"]);
  assert.deepEqual((await yoda!.cmd("whoelse")).lines, ["hans", "vader"]);
  assert.deepEqual((await yoda!.cmd("online")).lines, ["hans", "vader"]);
});

Deno.test("whoelsesince counts anyone online at any moment in the window, boundaries included", async () => {
  await using test = await startServer();
  const [yoda, vader] = await everyone(test, ["yoda", "vader"]);
  test.clock.advance(10_000);
  await vader!.cmd("OUT"); // vader left at t = 10 s
  test.clock.advance(20_000); // now t = 30 s
  assert.deepEqual((await yoda!.cmd("whoelsesince 20")).lines, ["vader"]);
  assert.deepEqual((await yoda!.cmd("whoelsesince 19")).lines, [
    "No other user was online in the last 19 seconds.",
  ]);
  const hans = await loggedIn(test, "hans", "falcon");
  assert.deepEqual((await yoda!.cmd("whoelsesince 0")).lines, ["hans"]);
  assert.deepEqual((await hans.cmd("whoelsesince 3600")).lines, ["vader", "yoda"]);
  for (const bad of ["-1", "1.5", "abc", ""]) {
    const reply = await yoda!.cmd(`whoelsesince ${bad}`.trim());
    assert.equal(reply.code, "usage", bad);
    assert.match(reply.lines[0]!, /Usage: whoelsesince <seconds>/);
  }
});

Deno.test("block and unblock: messages, errors and one-way effect", async () => {
  await using test = await startServer();
  const [yoda, vader] = await everyone(test, ["yoda", "vader"]);
  assert.deepEqual((await yoda!.cmd("block vader")).lines, ["vader is blocked"]);
  assert.deepEqual((await yoda!.cmd("block yoda")).lines, ["You cannot block yourself."]);
  assert.deepEqual((await yoda!.cmd("block darth")).lines, ["User darth does not exist."]);
  assert.deepEqual((await yoda!.cmd("unblock hans")).lines, ["hans is not blocked."]);
  // One-way: yoda can still message vader.
  assert.equal((await yoda!.cmd("message vader still talking")).ok, true);
  await vader!.waitFor("yoda: still talking");
  assert.deepEqual((await yoda!.cmd("unblock vader")).lines, ["vader is unblocked"]);
  assert.equal((await vader!.cmd("message yoda hello")).ok, true);
});

Deno.test("the block rule holds for every command it touches", async () => {
  await using test = await startServer();
  const [yoda, vader, hans] = await everyone(test, ["yoda", "vader", "hans"]);
  await yoda!.cmd("block vader");
  const matrix: Array<[string, (lines: string[]) => void]> = [
    ["message yoda hi", (l) =>
      assert.deepEqual(l, [
        "Your message could not be delivered as the recipient has blocked you",
      ])],
    ["broadcast hi all", (l) =>
      assert.deepEqual(l, [
        "Your message could not be delivered to some recipients",
      ])],
    ["whoelse", (l) => assert.deepEqual(l, ["hans"])],
    ["online", (l) => assert.deepEqual(l, ["hans"])],
    ["whoelsesince 60", (l) => assert.deepEqual(l, ["hans"])],
    ["ATU", (l) => assert.equal(l.some((line) => line.startsWith("yoda,")), false)],
  ];
  for (const [line, check] of matrix) check((await vader!.cmd(line)).lines);
  await hans!.waitFor("vader: hi all");
  await settle();
  assert.ok(!yoda!.eventLines.some((l) => l.startsWith("vader:")));
  // yoda still sees vader: blocks are one-way.
  assert.ok((await yoda!.cmd("ATU")).lines.some((l) => l.startsWith("vader,")));
  assert.deepEqual((await yoda!.cmd("whoelse")).lines, ["hans", "vader"]);
  // Offline messages from a blocked user are refused too.
  await yoda!.cmd("OUT");
  assert.equal((await vader!.cmd("message yoda later")).ok, false);
});

Deno.test("presence notices for each way of leaving", async () => {
  await using test = await startServer({ inactivityMs: 60_000, duplicateLogin: "replace" });
  const [watcher] = await everyone(test, ["obiwan"]);
  // OUT
  const yoda = await loggedIn(test, "yoda", "jedi");
  await yoda.cmd("OUT");
  await watcher!.waitFor("yoda logged out");
  // Lost connection
  const vader = await loggedIn(test, "vader", "sithlord");
  vader.close();
  await watcher!.waitFor("vader logged out");
  // Inactivity (the watcher stays active)
  const hans = await loggedIn(test, "hans", "falcon");
  test.clock.advance(30_000);
  await watcher!.cmd("whoelse");
  test.clock.advance(30_000);
  await test.server.sweep();
  await hans.waitFor("You have been logged out due to inactivity");
  await watcher!.waitFor("hans logged out");
  // Replaced session: logged out, then in again
  watcher!.events.length = 0;
  await loggedIn(test, "yoda", "jedi");
  await watcher!.waitFor("yoda logged in");
  watcher!.events.length = 0;
  await loggedIn(test, "yoda", "jedi");
  await watcher!.waitFor("yoda logged out");
  await watcher!.waitFor("yoda logged in");
});

Deno.test("inactivity timeout: only commands count, and the userlog is updated", async () => {
  await using test = await startServer({ inactivityMs: 10_000 });
  const [yoda, vader] = await everyone(test, ["yoda", "vader"]);
  test.clock.advance(9_000);
  await yoda!.cmd("ATU"); // activity
  await vader!.link.request({ t: "cmd", line: "ATU" });
  test.clock.advance(5_000);
  await test.server.sweep();
  assert.equal(test.server.state.roster.online.size, 2);
  // Messages received and heartbeats do not count.
  await yoda!.cmd("message vader hi");
  test.clock.advance(5_000);
  await test.server.sweep();
  await vader!.waitFor("You have been logged out due to inactivity");
  await vader!.link.closed;
  assert.equal(test.server.state.roster.online.has("vader"), false);
  assert.doesNotMatch(test.file("userlog.txt"), /vader/);
  assert.ok(test.server.state.roster.online.has("yoda"));
});

Deno.test("--allow-register creates an account, hashed, keeping other lines byte for byte", async () => {
  await using test = await startServer({ allowRegister: true });
  const original = "yoda jedi\r\nvader sithlord\n\nbroken line here\nhans falcon";
  test.files.contents.set("credentials.txt", original);
  const client = test.connect();
  await client.hello();
  const asked = await client.link.request({ t: "user", name: "luke" });
  assert.deepEqual(asked.lines, ["This is a new user. Enter a password:"]);
  const bad = await client.link.request({ t: "pass", password: "has space", udpPort: 1 });
  assert.equal(bad.code, "usage");
  const done = await client.link.request({ t: "pass", password: "usetheforce", udpPort: 1 });
  assert.deepEqual(done.lines, ["Welcome to TOOM!"]);
  const text = test.file("credentials.txt");
  assert.ok(text.startsWith(original + "\n"));
  assert.match(text.slice(original.length + 1), /^luke scrypt\$\d+\$\d+\$\d+\$[^ ]+\$[^ ]+\n$/);
  await client.cmd("OUT");
  assert.equal((await test.connect().login("luke", "usetheforce")).ok, true);
});

Deno.test("two registrations of one name at once yield exactly one account", async () => {
  await using test = await startServer({ allowRegister: true });
  const a = test.connect();
  const b = test.connect();
  await Promise.all([a.hello(), b.hello()]);
  await Promise.all([
    a.link.request({ t: "user", name: "rey" }),
    b.link.request({ t: "user", name: "rey" }),
  ]);
  const results = await Promise.all([
    a.link.request({ t: "pass", password: "one", udpPort: 1 }),
    b.link.request({ t: "pass", password: "two", udpPort: 1 }),
  ]);
  assert.equal(results.filter((r) => r.ok).length, 1);
  assert.match(results.find((r) => !r.ok)!.lines[0]!, /already taken/);
  assert.equal(test.file("credentials.txt").match(/^rey /gm)?.length, 1);
});

Deno.test("without --allow-register an unknown name cannot create an account", async () => {
  await using test = await startServer();
  assert.deepEqual((await test.connect().login("rey", "x")).lines, ["Username does not exist"]);
  assert.doesNotMatch(test.file("credentials.txt"), /rey/);
});

Deno.test("passwd changes one's own password, hashed, after checking the old one", async () => {
  await using test = await startServer();
  const [yoda] = await everyone(test, ["yoda"]);
  const wrong = await yoda!.link.request({ t: "passwd", old: "nope", new: "fresh" });
  assert.deepEqual(wrong.lines, ["Old password is incorrect. Password not changed."]);
  const bad = await yoda!.link.request({ t: "passwd", old: "jedi", new: "" });
  assert.equal(bad.code, "usage");
  const ok = await yoda!.link.request({ t: "passwd", old: "jedi", new: "fresh" });
  assert.deepEqual(ok.lines, ["Password changed."]);
  assert.match(test.file("credentials.txt"), /^yoda scrypt\$/m);
  assert.match(test.file("credentials.txt"), /^vader sithlord$/m);
  await yoda!.cmd("OUT");
  assert.equal((await test.connect().login("yoda", "jedi")).code, "bad-password");
  assert.equal((await test.connect().login("yoda", "fresh")).ok, true);
});

Deno.test("help lists every command with its syntax", async () => {
  await using test = await startServer();
  const [yoda] = await everyone(test, ["yoda"]);
  const lines = (await yoda!.cmd("help")).lines.join("\n");
  for (const usage of ["MSG <message>", "message <user> <message>", "whoelsesince <seconds>"]) {
    assert.ok(lines.includes(usage), usage);
  }
});
