/** The server as broker of the peer-to-peer path: UPD, startprivate, stopprivate. */
import assert from "node:assert/strict";
import { parseTicket } from "../../lib/p2p/mod.ts";
import { FILE_TICKET_MEMORY_MS } from "../../lib/server/broker.ts";
import type { EventFrame, EventKind, EventOf } from "../../lib/shared/protocol.ts";
import {
  loggedIn,
  PASSWORDS,
  settle,
  startServer,
  type TestServer,
} from "../../testing/server_fixture.ts";

/** The data of an event of the expected kind; the test fails on any other kind. */
function dataOf<K extends EventKind>(
  event: EventFrame,
  kind: K,
): NonNullable<EventOf<K>["data"]> {
  assert.equal(event.kind, kind);
  return event.data as NonNullable<EventOf<K>["data"]>;
}

async function users(test: TestServer, names: string[]) {
  const clients = [];
  let port = 7001;
  for (const name of names) clients.push(await loggedIn(test, name, PASSWORDS[name]!, port++));
  return clients;
}

Deno.test("UPD hands both peers matching tickets with each other's UDP address", async () => {
  await using test = await startServer();
  const [yoda, hans] = await users(test, ["yoda", "hans"]);
  const reply = await yoda!.cmd("UPD hans notes.txt");
  assert.equal(reply.ok, true);
  const mine = parseTicket(reply.data?.ticket);
  const theirsEvent = await hans!.waitForEvent((e) => e.kind === "ticket");
  const theirs = parseTicket(dataOf(theirsEvent, "ticket").ticket);
  assert.equal(mine.id, theirs.id);
  assert.equal(mine.key, theirs.key);
  assert.deepEqual([mine.kind, mine.role, mine.self, mine.peer], [
    "file",
    "sender",
    "yoda",
    "hans",
  ]);
  assert.deepEqual([theirs.role, theirs.self, theirs.peer], ["receiver", "hans", "yoda"]);
  assert.equal(mine.address.port, 7002);
  assert.equal(theirs.address.port, 7001);
  assert.equal(theirs.fileName, "notes.txt");
  // Each transfer gets a fresh key.
  const again = parseTicket((await yoda!.cmd("UPD hans notes.txt")).data?.ticket);
  assert.notEqual(again.key, mine.key);
  assert.notEqual(again.id, mine.id);
});

Deno.test("UPD refuses self, unknown, offline and blocked targets", async () => {
  await using test = await startServer();
  const [yoda, hans] = await users(test, ["yoda", "hans"]);
  const cases: Array<[string, string]> = [
    ["UPD yoda f.txt", "You cannot send a file to yourself."],
    ["UPD darth f.txt", "User darth does not exist."],
    ["UPD vader f.txt", "vader is offline"],
  ];
  for (const [line, error] of cases) assert.deepEqual((await yoda!.cmd(line)).lines, [error]);
  await hans!.cmd("block yoda");
  assert.deepEqual((await yoda!.cmd("UPD hans f.txt")).lines, [
    "Your file could not be sent as hans has blocked you",
  ]);
  // A blocked user does not learn whether the blocker is online.
  await hans!.cmd("OUT");
  assert.deepEqual((await yoda!.cmd("UPD hans f.txt")).lines, [
    "Your file could not be sent as hans has blocked you",
  ]);
  assert.equal((await yoda!.cmd("UPD hans")).code, "usage");
});

Deno.test("UPD reads a quoted file name with spaces and hands it on in the ticket", async () => {
  await using test = await startServer();
  const [yoda, hans] = await users(test, ["yoda", "hans"]);
  const reply = await yoda!.cmd('UPD hans "my notes.txt"');
  assert.equal(parseTicket(reply.data?.ticket).fileName, "my notes.txt");
  const event = await hans!.waitForEvent((e) => e.kind === "ticket");
  assert.equal(parseTicket(dataOf(event, "ticket").ticket).fileName, "my notes.txt");
  assert.ok(test.logger.lines.includes("yoda is sending my notes.txt to hans over UDP."));
});

Deno.test("UPD refuses a file name with control, escape, bidi or zero-width characters", async () => {
  await using test = await startServer();
  const [yoda, hans] = await users(test, ["yoda", "hans"]);
  const names = [
    "clear\u001b[2J.txt",
    '"new\nline.txt"',
    "vader_\u202etxt.exe",
    "zero\u200bwidth.txt",
    "bom\ufeff.txt",
    "del\u007f.txt",
  ];
  for (const name of names) {
    const reply = await yoda!.cmd(`UPD hans ${name}`);
    assert.equal(reply.ok, false, name);
    assert.deepEqual(reply.lines, [
      "Error. File names cannot contain control or invisible formatting characters.",
    ]);
  }
  // Before any other check: even to oneself or to nobody.
  for (const user of ["yoda", "darth"]) {
    assert.deepEqual((await yoda!.cmd(`UPD ${user} a\u202eb`)).lines, [
      "Error. File names cannot contain control or invisible formatting characters.",
    ]);
  }
  await settle();
  assert.equal(hans!.events.filter((e) => e.kind === "ticket").length, 0);
  assert.equal(test.logger.lines.some((line) => line.includes("over UDP")), false);
});

Deno.test("startprivate asks the target; yes gives both a chat ticket", async () => {
  await using test = await startServer();
  const [yoda, hans] = await users(test, ["yoda", "hans"]);
  assert.deepEqual((await yoda!.cmd("startprivate hans")).lines, [
    "Waiting for hans to accept private messaging...",
  ]);
  const ask = await hans!.waitFor("yoda would like to private message, enter y or n:");
  const answer = await hans!.link.request({ t: "answer", ask: dataOf(ask, "ask").ask, yes: true });
  assert.equal(answer.ok, true);
  const started = await yoda!.waitFor("Start private messaging with hans");
  const mine = parseTicket(dataOf(started, "ticket").ticket);
  const theirs = parseTicket(
    dataOf(await hans!.waitFor("Start private messaging with yoda"), "ticket").ticket,
  );
  assert.deepEqual([mine.kind, mine.role, theirs.role], ["chat", "initiator", "responder"]);
  assert.equal(mine.key, theirs.key);
  assert.deepEqual((await yoda!.cmd("getaddress hans")).lines, [
    "Private messaging with hans is already enabled.",
  ]);
  // The same answer cannot be used twice.
  const twice = await hans!.link.request({ t: "answer", ask: dataOf(ask, "ask").ask, yes: true });
  assert.equal(twice.ok, false);
});

Deno.test("startprivate declined tells the requester", async () => {
  await using test = await startServer();
  const [yoda, hans] = await users(test, ["yoda", "hans"]);
  await yoda!.cmd("getaddress hans");
  const ask = await hans!.waitFor("would like to private message");
  await hans!.link.request({ t: "answer", ask: dataOf(ask, "ask").ask, yes: false });
  await yoda!.waitFor("hans declined private messaging");
  assert.equal(yoda!.events.some((e) => e.kind === "ticket"), false);
});

Deno.test("startprivate refuses self, unknown, offline and blocked; unanswered requests expire", async () => {
  await using test = await startServer();
  const [yoda, hans, vader] = await users(test, ["yoda", "hans", "vader"]);
  assert.deepEqual((await yoda!.cmd("startprivate yoda")).lines, [
    "You cannot start private messaging with yourself.",
  ]);
  assert.deepEqual((await yoda!.cmd("startprivate darth")).lines, ["User darth does not exist."]);
  assert.deepEqual((await yoda!.cmd("startprivate obiwan")).lines, ["obiwan is offline"]);
  await vader!.cmd("block yoda");
  assert.deepEqual((await yoda!.cmd("startprivate vader")).lines, [
    "Private messaging could not be started as vader has blocked you",
  ]);
  await yoda!.cmd("startprivate hans");
  assert.deepEqual((await yoda!.cmd("startprivate hans")).lines, [
    "Still waiting for hans to answer.",
  ]);
  test.clock.advance(60_001);
  yoda!.link.heartbeat();
  hans!.link.heartbeat();
  vader!.link.heartbeat();
  await settle();
  await test.server.sweep();
  await yoda!.waitFor("hans did not answer the private messaging request");
});

Deno.test("stopprivate ends the session and tells the peer; logout and block end it too", async () => {
  await using test = await startServer();
  const [yoda, hans, obiwan] = await users(test, ["yoda", "hans", "obiwan"]);
  const open = async (a: typeof yoda, b: typeof yoda, bName: string) => {
    await a!.cmd(`startprivate ${bName}`);
    const ask = [...b!.events].reverse().find((e) => e.kind === "ask") ??
      await b!.waitFor("would like to private message");
    await b!.link.request({ t: "answer", ask: dataOf(ask, "ask").ask, yes: true });
  };
  await open(yoda, hans, "hans");
  assert.deepEqual((await hans!.cmd("stopprivate obiwan")).lines, [
    "Error. Private messaging to obiwan not enabled",
  ]);
  const stopped = await hans!.cmd("stopprivate yoda");
  assert.deepEqual(stopped.lines, ["Private messaging with yoda stopped"]);
  await yoda!.waitFor("hans stopped private messaging with you");

  hans!.events.length = 0;
  await open(yoda, hans, "hans");
  await open(obiwan, yoda, "yoda");
  await yoda!.cmd("OUT");
  await hans!.waitFor("Private messaging with yoda ended (yoda logged out)");
  await obiwan!.waitFor("Private messaging with yoda ended (yoda logged out)");

  const vader = await loggedIn(test, "vader", "sithlord");
  hans!.events.length = 0;
  await open(hans, vader, "vader");
  await vader.cmd("block hans");
  await hans!.waitFor("Private messaging with vader ended");
  assert.ok(!hans!.eventLines.some((line) => line.includes("blocked")));
});

Deno.test("block revokes the file tickets the blocked user holds for sending to the blocker; both are told", async () => {
  await using test = await startServer();
  const [yoda, hans, obiwan] = await users(test, ["yoda", "hans", "obiwan"]);
  const ticketOf = async (client: typeof yoda, line: string) =>
    parseTicket((await client!.cmd(line)).data?.ticket).id;
  const first = await ticketOf(yoda, "UPD hans notes.txt");
  const second = await ticketOf(yoda, `UPD hans "big plans.iso"`);
  const toObiwan = await ticketOf(yoda, "UPD obiwan notes.txt");
  const fromHans = await ticketOf(hans, "UPD yoda reply.txt");
  assert.deepEqual(test.server.state.broker.fileTickets("yoda", "hans"), [first, second]);

  assert.deepEqual((await hans!.cmd("block yoda")).lines, ["yoda is blocked"]);
  await hans!.waitFor("Stopped receiving big plans.iso from yoda: you blocked yoda.");
  const revokedForHans = hans!.events.filter((e) => e.kind === "transfer-revoked");
  assert.deepEqual(revokedForHans.map((e) => dataOf(e, "transfer-revoked")), [
    { peer: "yoda", ticketId: first },
    { peer: "yoda", ticketId: second },
  ]);
  assert.deepEqual(revokedForHans.flatMap((e) => e.lines), [
    "Stopped receiving notes.txt from yoda: you blocked yoda.",
    "Stopped receiving big plans.iso from yoda: you blocked yoda.",
  ]);
  await yoda!.waitFor("Your file transfer of big plans.iso to hans was stopped");
  const revokedForYoda = yoda!.events.filter((e) => e.kind === "transfer-revoked");
  assert.deepEqual(revokedForYoda.map((e) => dataOf(e, "transfer-revoked")), [
    { peer: "hans", ticketId: first },
    { peer: "hans", ticketId: second },
  ]);
  assert.deepEqual(revokedForYoda.flatMap((e) => e.lines), [
    "Your file transfer of notes.txt to hans was stopped: hans has blocked you.",
    "Your file transfer of big plans.iso to hans was stopped: hans has blocked you.",
  ]);
  assert.ok(test.logger.lines.some((l) => l.includes("hans revoked 2 file ticket(s) of yoda.")));

  // Other pairs and the blocker's own transfers to the blocked user are untouched.
  assert.deepEqual(test.server.state.broker.fileTickets("yoda", "obiwan"), [toObiwan]);
  assert.deepEqual(test.server.state.broker.fileTickets("hans", "yoda"), [fromHans]);
  assert.equal(obiwan!.events.some((e) => e.kind === "transfer-revoked"), false);
  // Revoked once: blocking again revokes nothing more.
  await hans!.cmd("block yoda");
  await settle();
  assert.equal(hans!.events.filter((e) => e.kind === "transfer-revoked").length, 2);
});

Deno.test("the server forgets file tickets after a day: an old one is not revoked, and the sweep drops it", async () => {
  await using test = await startServer();
  const [yoda, hans] = await users(test, ["yoda", "hans"]);
  await yoda!.cmd("UPD hans old.txt");
  test.clock.advance(FILE_TICKET_MEMORY_MS - 1);
  const recent = parseTicket((await yoda!.cmd("UPD hans recent.txt")).data?.ticket).id;
  test.clock.advance(1);
  assert.deepEqual(test.server.state.broker.fileTickets("yoda", "hans"), [recent]);
  test.server.state.broker.expire(test.clock.now(), () => {});
  test.clock.advance(FILE_TICKET_MEMORY_MS);
  test.server.state.broker.expire(test.clock.now(), () => {});
  assert.deepEqual(test.server.state.broker.fileTickets("yoda", "hans"), []);
  await hans!.cmd("block yoda");
  await settle();
  assert.equal(hans!.events.some((e) => e.kind === "transfer-revoked"), false);
  assert.equal(yoda!.events.some((e) => e.kind === "transfer-revoked"), false);
});
