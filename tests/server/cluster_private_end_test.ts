/**
 * Ending private sessions and revoking file tickets across the nodes of a cluster
 * (lib/server/cluster/brokering.ts, local_effects.ts): two chat servers in-process on one
 * PostgreSQL database, yoda on the first and hans on the second. Whatever ends a private session
 * on a single server (stopprivate by either peer, a block, a logout, a replacing login, a lost
 * node) ends it on both nodes, and each peer is told what a single server tells them (the texts
 * of tests/server/broker_test.ts); a block revokes the file tickets the blocked user holds for
 * sending to the blocker, as a single server does.
 */
import assert from "node:assert/strict";
import { parseTicket } from "../../lib/p2p/mod.ts";
import type { EventFrame } from "../../lib/shared/protocol.ts";
import {
  type ClusterTestServer,
  type YodaAndHans,
  yodaAndHans,
} from "../../testing/cluster_fixture.ts";
import { eventually } from "../../testing/eventually.ts";
import { postgresTest } from "../../testing/postgres.ts";
import { loggedIn, type TestClient } from "../../testing/server_fixture.ts";

const pgTest = postgresTest("cluster private-session tests");

type Nodes = YodaAndHans;

/** `client`'s events of `kind` from the `from`-th on. */
function eventsOf(client: TestClient, kind: string, from = 0): EventFrame[] {
  return client.events.slice(from).filter((event) => event.kind === kind);
}

/** The first `private-stop` event `client` got after `from` events, as [lines, data]. */
async function stopOf(client: TestClient, from = 0): Promise<[string[], unknown]> {
  const event = await eventAfter(client, from, "private-stop");
  return [event.lines, event.data];
}

/** The first event of `kind` whose first line is `line` that `client` got after `from` events. */
function eventAfter(client: TestClient, from: number, kind: string, line?: string) {
  return client.waitForEvent((event) =>
    event.kind === kind && (line === undefined || event.lines[0] === line) &&
    client.events.indexOf(event) >= from
  );
}

/**
 * yoda asks hans for private messaging and hans says yes; resolves with the session's ticket id
 * once both have their ticket (so both nodes know the session).
 */
async function privately(nodes: Nodes): Promise<string> {
  const { yoda, hans } = nodes;
  const marks = [yoda.events.length, hans.events.length] as const;
  assert.deepEqual((await yoda.cmd("startprivate hans")).lines, [
    "Waiting for hans to accept private messaging...",
  ]);
  const ask = await eventAfter(hans, marks[1], "ask");
  const answer = await hans.link.request({
    t: "answer",
    ask: (ask.data as { ask: number }).ask,
    yes: true,
  });
  assert.equal(answer.ok, true, answer.lines.join(" "));
  const idOf = (event: EventFrame) => parseTicket((event.data as { ticket: unknown }).ticket).id;
  const ticketId = idOf(
    await eventAfter(hans, marks[1], "ticket", "Start private messaging with yoda"),
  );
  const yodas = idOf(
    await eventAfter(yoda, marks[0], "ticket", "Start private messaging with hans"),
  );
  assert.equal(yodas, ticketId);
  assert.equal(pairOn(nodes.one), ticketId);
  assert.equal(pairOn(nodes.two), ticketId);
  return ticketId;
}

/** The ticket id of the private session between yoda and hans as `node`'s Broker knows it. */
function pairOn(node: ClusterTestServer): string | undefined {
  const { broker } = node.server.state;
  assert.equal(broker.between("yoda", "hans"), broker.between("hans", "yoda"));
  return broker.between("yoda", "hans");
}

/** Fails unless neither node knows a private session between yoda and hans. */
function assertNoPair(nodes: Nodes): void {
  assert.equal(pairOn(nodes.one), undefined, "node 1 still knows the session");
  assert.equal(pairOn(nodes.two), undefined, "node 2 still knows the session");
}

pgTest("stopprivate across nodes tells the peer as one server does; a new ask asks", async () => {
  await using nodes = await yodaAndHans();
  const { yoda, hans } = nodes;
  const ticketId = await privately(nodes);
  const stopped = await hans.cmd("stopprivate yoda");
  assert.deepEqual([stopped.ok, stopped.lines, stopped.data], [
    true,
    ["Private messaging with yoda stopped"],
    { ticketId },
  ]);
  assert.deepEqual(await stopOf(yoda), [
    ["hans stopped private messaging with you"],
    { peer: "hans", ticketId },
  ]);
  assertNoPair(nodes);
  assert.deepEqual((await hans.cmd("stopprivate yoda")).lines, [
    "Error. Private messaging to yoda not enabled",
  ]);
  assert.deepEqual((await yoda.cmd("stopprivate hans")).lines, [
    "Error. Private messaging to hans not enabled",
  ]);

  // A new startprivate asks again, and its session is stopped from the other side.
  const mark = hans.events.length;
  const again = await privately(nodes);
  assert.notEqual(again, ticketId);
  assert.deepEqual((await yoda.cmd("stopprivate hans")).lines, [
    "Private messaging with hans stopped",
  ]);
  assert.deepEqual(await stopOf(hans, mark), [
    ["yoda stopped private messaging with you"],
    { peer: "yoda", ticketId: again },
  ]);
  assertNoPair(nodes);
  assert.equal(eventsOf(yoda, "private-stop").length, 1);
  assert.equal(eventsOf(hans, "private-stop").length, 1);
});

pgTest("a block across nodes ends the private session: both told, on both nodes", async () => {
  await using nodes = await yodaAndHans();
  const { yoda, hans } = nodes;
  const ticketId = await privately(nodes);
  assert.deepEqual((await yoda.cmd("block hans")).lines, ["hans is blocked"]);
  // As on one server: no reason given, so the blocked user is not told who blocked them.
  assert.deepEqual(await stopOf(hans), [
    ["Private messaging with yoda ended"],
    { peer: "yoda", ticketId },
  ]);
  assert.deepEqual(await stopOf(yoda), [
    ["Private messaging with hans ended"],
    { peer: "hans", ticketId },
  ]);
  assert.ok(!hans.eventLines.some((line) => line.includes("blocked")));
  assertNoPair(nodes);
  assert.deepEqual((await hans.cmd("startprivate yoda")).lines, [
    "Private messaging could not be started as yoda has blocked you",
  ]);
});

pgTest("a logout on one node ends its private sessions and requests on the other", async () => {
  await using nodes = await yodaAndHans();
  const { one, yoda, hans } = nodes;
  const ticketId = await privately(nodes);
  const vader = await loggedIn(one, "vader", "sithlord", 8003);
  await hans.waitFor("vader logged in");
  assert.deepEqual((await vader.cmd("startprivate hans")).lines, [
    "Waiting for hans to accept private messaging...",
  ]);
  await hans.waitFor("vader would like to private message");
  assert.deepEqual((await hans.cmd("OUT")).lines, ["Bye, hans!"]);
  assert.deepEqual(await stopOf(yoda), [
    ["Private messaging with hans ended (hans logged out)"],
    { peer: "hans", ticketId },
  ]);
  // The request hans left unanswered is dropped at once, as on one server.
  await vader.waitFor("hans did not answer the private messaging request");
  assertNoPair(nodes);
  assert.deepEqual((await vader.cmd("startprivate hans")).lines, ["hans is offline"]);
});

pgTest("a replacing login on the other node ends the private session", async () => {
  await using nodes = await yodaAndHans({ duplicateLogin: "replace" });
  const { one, two, yoda, hans } = nodes;
  const ticketId = await privately(nodes);
  await loggedIn(one, "hans", "falcon", 8004);
  await hans.waitFor("logged in from another location");
  assert.deepEqual(await stopOf(yoda), [
    ["Private messaging with hans ended (hans logged out)"],
    { peer: "hans", ticketId },
  ]);
  await eventually(
    "node 2 let hans's first session go",
    () => !two.server.state.roster.get("hans"),
  );
  assertNoPair(nodes);
  assert.deepEqual((await yoda.cmd("startprivate hans")).lines, [
    "Waiting for hans to accept private messaging...",
  ]);
});

pgTest("a lost node's users' private sessions end on the other nodes", async () => {
  await using nodes = await yodaAndHans();
  const { one, yoda } = nodes;
  const ticketId = await privately(nodes);
  // As the liveness watcher proposes it (cluster_failures_test.ts kills a node for real).
  const lost = await one.cluster.propose({ t: "node-lost", node: "node-2", at: one.clock.now() });
  assert.deepEqual(lost.ok && lost.users, ["hans"]);
  await yoda.waitFor("hans logged out");
  assert.deepEqual(await stopOf(yoda), [
    ["Private messaging with hans ended (hans logged out)"],
    { peer: "hans", ticketId },
  ]);
  assert.equal(pairOn(one), undefined);
});

pgTest(
  "a block across nodes revokes the blocked user's file tickets as one server does",
  async () => {
    await using nodes = await yodaAndHans();
    const { one, two, yoda, hans } = nodes;
    const ticketOf = async (client: TestClient, line: string) => {
      const reply = await client.cmd(line);
      assert.equal(reply.ok, true, reply.lines.join(" "));
      return parseTicket(reply.data?.ticket).id;
    };
    const first = await ticketOf(yoda, "UPD hans notes.txt");
    const second = await ticketOf(yoda, `UPD hans "big plans.iso"`);
    const fromHans = await ticketOf(hans, "UPD yoda reply.txt");
    await yoda.waitForEvent((event) => event.kind === "ticket");
    for (const node of [one, two]) {
      assert.deepEqual(node.server.state.broker.fileTickets("yoda", "hans"), [first, second]);
      assert.deepEqual(node.server.state.broker.fileTickets("hans", "yoda"), [fromHans]);
    }

    assert.deepEqual((await hans.cmd("block yoda")).lines, ["yoda is blocked"]);
    await hans.waitFor("Stopped receiving big plans.iso from yoda: you blocked yoda.");
    const revokedForHans = eventsOf(hans, "transfer-revoked");
    assert.deepEqual(revokedForHans.map((event) => event.data), [
      { peer: "yoda", ticketId: first },
      { peer: "yoda", ticketId: second },
    ]);
    assert.deepEqual(revokedForHans.flatMap((event) => event.lines), [
      "Stopped receiving notes.txt from yoda: you blocked yoda.",
      "Stopped receiving big plans.iso from yoda: you blocked yoda.",
    ]);
    await yoda.waitFor("Your file transfer of big plans.iso to hans was stopped");
    const revokedForYoda = eventsOf(yoda, "transfer-revoked");
    assert.deepEqual(revokedForYoda.map((event) => event.data), [
      { peer: "hans", ticketId: first },
      { peer: "hans", ticketId: second },
    ]);
    assert.deepEqual(revokedForYoda.flatMap((event) => event.lines), [
      "Your file transfer of notes.txt to hans was stopped: hans has blocked you.",
      "Your file transfer of big plans.iso to hans was stopped: hans has blocked you.",
    ]);
    assert.ok(two.logger.lines.some((l) => l.includes("hans revoked 2 file ticket(s) of yoda.")));
    // The blocker's own transfers to the blocked user are untouched, on both nodes.
    for (const node of [one, two]) {
      assert.deepEqual(node.server.state.broker.fileTickets("yoda", "hans"), []);
      assert.deepEqual(node.server.state.broker.fileTickets("hans", "yoda"), [fromHans]);
    }

    // Revoked once: blocking again revokes nothing more. yoda's refused UPD is decided after it.
    assert.deepEqual((await hans.cmd("block yoda")).lines, ["yoda is blocked"]);
    assert.deepEqual((await yoda.cmd("UPD hans late.txt")).lines, [
      "Your file could not be sent as hans has blocked you",
    ]);
    assert.equal(eventsOf(hans, "transfer-revoked").length, 2);
    assert.equal(eventsOf(yoda, "transfer-revoked").length, 2);
  },
);
