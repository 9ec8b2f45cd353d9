/**
 * The peer-to-peer broker across the nodes of a cluster (lib/server/cluster/brokering.ts): two
 * chat servers in-process on one PostgreSQL database, driven by protocol clients. A UPD to a user
 * on the other node is decided in log order (the block rule then) and its tickets carry both
 * peers' UDP addresses from the replicated online list.
 */
import assert from "node:assert/strict";
import { parseTicket } from "../../lib/p2p/mod.ts";
import { UNSAFE_FILE_NAME } from "../../lib/shared/commands.ts";
import type { OnlineList } from "../../lib/server/cluster/online_list.ts";
import { yodaAndHans } from "../../testing/cluster_fixture.ts";
import { postgresTest } from "../../testing/postgres.ts";
import { type TestClient } from "../../testing/server_fixture.ts";

const pgTest = postgresTest("cluster broker tests");

/** The address `user` logged in with: where their peers reach them over UDP. */
function announced(online: OnlineList, user: string): { hostname: string; port: number } {
  const entry = online.get(user)!;
  return { hostname: entry.ip, port: entry.udpPort };
}

pgTest("UPD to a user on the other node hands both peers matching tickets", async () => {
  await using nodes = await yodaAndHans();
  const reply = await nodes.yoda.cmd("UPD hans notes.txt");
  assert.equal(reply.ok, true, reply.lines.join(" "));
  const mine = parseTicket(reply.data?.ticket);
  const event = await nodes.hans.waitForEvent((e) => e.kind === "ticket");
  const theirs = parseTicket((event.data as { ticket: unknown }).ticket);
  assert.deepEqual([mine.id, mine.key], [theirs.id, theirs.key]);
  assert.deepEqual([mine.kind, mine.role, mine.self, mine.peer], [
    "file",
    "sender",
    "yoda",
    "hans",
  ]);
  assert.deepEqual([theirs.role, theirs.self, theirs.peer], ["receiver", "hans", "yoda"]);
  assert.equal(theirs.fileName, "notes.txt");
  const online = nodes.two.server.state.store.online;
  assert.deepEqual(mine.address, announced(online, "hans"));
  assert.deepEqual(theirs.address, announced(online, "yoda"));
  assert.equal(nodes.hans.events.filter((e) => e.kind === "ticket").length, 1);
});

pgTest("UPD across nodes is refused with the broker's texts", async () => {
  await using nodes = await yodaAndHans();
  assert.deepEqual((await nodes.hans.cmd("block yoda")).lines, ["yoda is blocked"]);
  assert.deepEqual((await nodes.yoda.cmd("UPD hans f.txt")).lines, [
    "Your file could not be sent as hans has blocked you",
  ]);
  assert.deepEqual((await nodes.yoda.cmd("UPD vader f.txt")).lines, ["vader is offline"]);
  assert.deepEqual((await nodes.yoda.cmd("UPD darth f.txt")).lines, [
    "User darth does not exist.",
  ]);
  assert.deepEqual((await nodes.yoda.cmd("UPD hans a\u202eb")).lines, [UNSAFE_FILE_NAME]);
  assert.equal(nodes.hans.events.filter((e) => e.kind === "ticket").length, 0);
});

/** The ask id of the first request event `client` got. */
async function askOf(client: TestClient): Promise<number> {
  const event = await client.waitFor("would like to private message, enter y or n:");
  return (event.data as { ask: number }).ask;
}

pgTest("startprivate to a user on the other node: yes gives both a chat ticket", async () => {
  await using nodes = await yodaAndHans();
  assert.deepEqual((await nodes.yoda.cmd("startprivate hans")).lines, [
    "Waiting for hans to accept private messaging...",
  ]);
  assert.deepEqual((await nodes.yoda.cmd("startprivate hans")).lines, [
    "Still waiting for hans to answer.",
  ]);
  const ask = await askOf(nodes.hans);
  const answer = await nodes.hans.link.request({ t: "answer", ask, yes: true });
  assert.equal(answer.ok, true, answer.lines.join(" "));
  const started = await nodes.yoda.waitFor("Start private messaging with hans");
  const mine = parseTicket((started.data as { ticket: unknown }).ticket);
  const event = await nodes.hans.waitFor("Start private messaging with yoda");
  const theirs = parseTicket((event.data as { ticket: unknown }).ticket);
  assert.deepEqual([mine.kind, mine.role, theirs.role], ["chat", "initiator", "responder"]);
  assert.deepEqual([mine.id, mine.key], [theirs.id, theirs.key]);
  const online = nodes.one.server.state.store.online;
  assert.deepEqual(mine.address, announced(online, "hans"));
  assert.deepEqual(theirs.address, announced(online, "yoda"));
  assert.deepEqual((await nodes.yoda.cmd("getaddress hans")).lines, [
    "Private messaging with hans is already enabled.",
  ]);
  const twice = await nodes.hans.link.request({ t: "answer", ask, yes: true });
  assert.equal(twice.ok, false);
  assert.equal(nodes.yoda.events.filter((e) => e.kind === "ticket").length, 1);
});

pgTest(
  "startprivate across nodes: a no tells the requester, a blocked one is refused",
  async () => {
    await using nodes = await yodaAndHans();
    await nodes.yoda.cmd("getaddress hans");
    const answer = await nodes.hans.link.request({
      t: "answer",
      ask: await askOf(nodes.hans),
      yes: false,
    });
    assert.equal(answer.ok, true);
    await nodes.yoda.waitFor("hans declined private messaging");
    assert.equal(nodes.yoda.events.some((e) => e.kind === "ticket"), false);
    assert.deepEqual((await nodes.hans.cmd("block yoda")).lines, ["yoda is blocked"]);
    assert.deepEqual((await nodes.yoda.cmd("startprivate hans")).lines, [
      "Private messaging could not be started as hans has blocked you",
    ]);
    assert.deepEqual((await nodes.yoda.cmd("startprivate vader")).lines, ["vader is offline"]);
  },
);
