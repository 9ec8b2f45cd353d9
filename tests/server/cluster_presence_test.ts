/**
 * Logins, logouts, presence and delivery across the nodes of a cluster (lib/server/roster.ts in
 * cluster mode, cluster/delivery.ts, cluster/local_effects.ts): two chat servers in-process on one
 * PostgreSQL database, driven by protocol clients. Each node tells its own users what the cluster
 * decided: presence notices, direct messages and broadcasts arrive once, whichever node sent them;
 * `whoelse` lists every node's users, a duplicate login is refused across nodes, offline messages
 * are handed out once, and userlog.txt is the same on both nodes.
 */
import assert from "node:assert/strict";
import { type ClusterTestServer, yodaAndHans } from "../../testing/cluster_fixture.ts";
import { eventually } from "../../testing/eventually.ts";
import { postgresTest } from "../../testing/postgres.ts";
import { loggedIn, type TestClient } from "../../testing/server_fixture.ts";

const pgTest = postgresTest("cluster presence tests");

/** The lines of `client`'s events of `kind`. */
function linesOf(client: TestClient, kind: string): string[] {
  return client.events.filter((event) => event.kind === kind).flatMap((event) => event.lines);
}

/** userlog.txt once both nodes have written the same text with `users` in it, in that order. */
async function sameUserLog(
  one: ClusterTestServer,
  two: ClusterTestServer,
  users: string[],
): Promise<string> {
  return await eventually(`both nodes' userlog.txt listing ${users.join(", ")}`, () => {
    const log = one.file("userlog.txt");
    const listed = log.split("\n").slice(0, -1).map((line) => line.split("; ")[2]);
    return log === two.file("userlog.txt") && listed.join() === users.join() ? log : undefined;
  });
}

pgTest(
  "a login and a logout on one node are seen on the other, and whoelse lists both",
  async () => {
    await using nodes = await yodaAndHans();
    await nodes.yoda.waitFor("hans logged in");
    assert.deepEqual((await nodes.yoda.cmd("whoelse")).lines, ["hans"]);
    assert.deepEqual((await nodes.hans.cmd("whoelse")).lines, ["yoda"]);
    const atu = (await nodes.hans.cmd("ATU")).lines;
    assert.equal(atu.length, 1);
    assert.match(atu[0]!, /^yoda, .*, 8001, active since /);
    const log = await sameUserLog(nodes.one, nodes.two, ["yoda", "hans"]);
    assert.match(log, /^1; .*; yoda; .*; 8001\n2; .*; hans; .*; 8002\n$/);

    assert.deepEqual((await nodes.hans.cmd("OUT")).lines, ["Bye, hans!"]);
    await nodes.yoda.waitFor("hans logged out");
    assert.deepEqual(linesOf(nodes.yoda, "presence"), ["hans logged in", "hans logged out"]);
    assert.deepEqual((await nodes.yoda.cmd("whoelse")).lines, ["No other user is online."]);
    assert.deepEqual((await nodes.yoda.cmd("whoelsesince 60")).lines, ["hans"]);
    await sameUserLog(nodes.one, nodes.two, ["yoda"]);
  },
);

pgTest("a second login of yoda on the other node is refused while yoda is online", async () => {
  await using nodes = await yodaAndHans();
  const again = nodes.two.connect();
  const refused = await again.login("yoda", "jedi");
  assert.deepEqual([refused.ok, refused.code, refused.lines], [false, "already-online", [
    "yoda is already logged in",
  ]]);
  // hans logged in on node 2: node 1 lists him once it has applied that.
  await nodes.yoda.waitFor("hans logged in");
  assert.deepEqual((await nodes.yoda.cmd("whoelse")).lines, ["hans"]);
  assert.deepEqual(linesOf(nodes.hans, "presence"), []);
  await sameUserLog(nodes.one, nodes.two, ["yoda", "hans"]);
});

pgTest("with replace, a login of yoda on the other node ends the first session", async () => {
  await using nodes = await yodaAndHans({ duplicateLogin: "replace" });
  await nodes.yoda.waitFor("hans logged in");
  const again = await loggedIn(nodes.two, "yoda", "jedi", 8003);
  await nodes.yoda.waitFor("logged in from another location");
  await nodes.hans.waitFor("yoda logged in");
  assert.deepEqual(linesOf(nodes.hans, "presence"), ["yoda logged out", "yoda logged in"]);
  assert.deepEqual((await again.cmd("whoelse")).lines, ["hans"]);
  await eventually("the first session gone", () => !nodes.one.server.state.roster.get("yoda"));
  const log = await sameUserLog(nodes.one, nodes.two, ["hans", "yoda"]);
  assert.match(log, /^1; .*; hans; .*; 8002\n2; .*; yoda; .*; 8003\n$/);
});

pgTest("a message from yoda on one node reaches hans on the other once", async () => {
  await using nodes = await yodaAndHans();
  assert.deepEqual((await nodes.yoda.cmd("message hans hello there")).lines, [
    "Message sent to hans.",
  ]);
  await nodes.hans.waitFor("yoda: hello there");
  assert.deepEqual((await nodes.hans.cmd("message yoda hi")).lines, ["Message sent to yoda."]);
  await nodes.yoda.waitFor("hans: hi");
  assert.deepEqual(linesOf(nodes.hans, "message"), ["yoda: hello there"]);
  assert.deepEqual(linesOf(nodes.yoda, "message"), ["hans: hi"]);
});

pgTest("a broadcast reaches the users of both nodes, and its count is cluster-wide", async () => {
  await using nodes = await yodaAndHans();
  const obiwan = await loggedIn(nodes.two, "obiwan", "hellothere");
  const vader = await loggedIn(nodes.one, "vader", "sithlord");
  assert.deepEqual((await nodes.yoda.cmd("broadcast may the force")).lines, [
    "Message broadcast to 3 users.",
  ]);
  for (const client of [nodes.hans, obiwan, vader]) await client.waitFor("yoda: may the force");
  // A user who blocked the sender is left out, and the sender is told so.
  assert.deepEqual((await vader.cmd("block hans")).lines, ["hans is blocked"]);
  assert.deepEqual((await nodes.hans.cmd("broadcast hello")).lines, [
    "Your message could not be delivered to some recipients",
  ]);
  for (const client of [nodes.yoda, obiwan]) await client.waitFor("hans: hello");
  for (const client of [nodes.hans, obiwan, vader]) {
    assert.deepEqual(linesOf(client, "broadcast").filter((l) => l.startsWith("yoda")), [
      "yoda: may the force",
    ]);
  }
  assert.deepEqual(linesOf(vader, "broadcast"), ["yoda: may the force"]);
  assert.deepEqual(linesOf(nodes.yoda, "broadcast"), ["hans: hello"]);
});

pgTest(
  "an offline message left on one node is delivered once at a login on the other",
  async () => {
    await using nodes = await yodaAndHans();
    assert.deepEqual((await nodes.yoda.cmd("message vader come back")).lines, [
      "vader is offline; the message will be delivered when they log in.",
    ]);
    const vader = await loggedIn(nodes.two, "vader", "sithlord");
    await vader.waitFor("yoda: come back");
    await eventually(
      "the message settled on both nodes",
      () =>
        [nodes.one, nodes.two].every((node) => {
          const { mailbox, online } = node.server.state.store;
          return mailbox.count("vader") === 0 && online.handed("vader").length === 0;
        }),
    );
    assert.deepEqual((await vader.cmd("OUT")).lines, ["Bye, vader!"]);
    await nodes.yoda.waitFor("vader logged out");
    const again = await loggedIn(nodes.one, "vader", "sithlord");
    assert.deepEqual((await again.cmd("whoelse")).lines, ["hans", "yoda"]);
    assert.deepEqual(linesOf(again, "message"), []);
    assert.deepEqual(linesOf(vader, "message"), ["yoda: come back"]);
    await sameUserLog(nodes.one, nodes.two, ["yoda", "hans", "vader"]);
  },
);
