/**
 * Failures across the nodes of a cluster (issue 12): failed logins counted across nodes, a node
 * that dies (its lease's connection killed, the other node's watcher clock moved on) logged out
 * everywhere with presence notices, PostgreSQL unreachable answered `Service unavailable, try
 * again` on a connection that stays open, and PostgreSQL gone silent (a relay holding every byte)
 * answered within the proposals' deadline. Chat servers in-process on one PostgreSQL database.
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import { NODE_LOCK_SPACE } from "../../lib/server/cluster/liveness.ts";
import { IN_DOUBT } from "../../lib/server/cluster/cluster.ts";
import { UNAVAILABLE } from "../../lib/shared/errors.ts";
import { startClusterServer, twoNodes } from "../../testing/cluster_fixture.ts";
import { eventually } from "../../testing/eventually.ts";
import { postgresTest, sharedPostgres, startPostgres } from "../../testing/postgres.ts";
import { startRelay } from "../../testing/relay.ts";
import { loggedIn } from "../../testing/server_fixture.ts";

const pgTest = postgresTest("cluster failure tests");

pgTest("failed logins on two nodes add up to a lockout that holds on both", async () => {
  await using nodes = await twoNodes();
  const { one, two } = nodes;
  // maxFailures is 3 (testConfig): two wrong passwords on node 1, one on node 2.
  for (let i = 0; i < 2; i++) {
    assert.equal((await one.connect().login("yoda", "wrong")).code, "bad-password");
  }
  const third = await two.connect().login("yoda", "wrong");
  assert.equal(third.code, "locked");
  assert.deepEqual(third.lines, [
    "Invalid Password. Your account has been blocked. Please try again later",
  ]);
  assert.equal((await two.connect().login("yoda", "jedi")).code, "blocked");
  // A proposal answered on node 1 comes after the lockout in the log: node 1 has applied it.
  const obiwan = await loggedIn(one, "obiwan", "hellothere");
  assert.equal((await obiwan.cmd("MSG the lockout is in")).ok, true);
  const refused = await one.connect().login("yoda", "jedi");
  assert.equal(refused.code, "blocked");
  assert.deepEqual(refused.lines, [
    "Your account is blocked due to multiple login failures. Please try again later",
  ]);
});

pgTest("a good password starts the count again on every node", async () => {
  await using nodes = await twoNodes();
  const { one, two } = nodes;
  assert.equal((await one.connect().login("yoda", "wrong")).code, "bad-password");
  assert.equal((await two.connect().login("yoda", "wrong")).code, "bad-password");
  (await loggedIn(two, "yoda", "jedi")).close();
  assert.equal((await one.connect().login("vader", "wrong")).code, "bad-password");
  // Were the count not reset, this would be yoda's third failure.
  assert.equal((await one.connect().login("yoda", "wrong")).code, "bad-password");
});

pgTest(
  "a node whose lease is gone is reported lost, and its users logged out everywhere",
  async () => {
    await using nodes = await twoNodes();
    const { url, one, two } = nodes;
    const yoda = await loggedIn(one, "yoda", "jedi", 8001);
    const hans = await loggedIn(two, "hans", "falcon", 8002);
    await loggedIn(two, "vader", "sithlord", 8003);
    await yoda.waitFor("vader logged in");
    assert.deepEqual((await yoda.cmd("whoelse")).lines, ["hans", "vader"]);

    // Node 2 "dies": the connection holding its lock ends, as when its process is killed.
    const sql = postgres(url, { max: 1, onnotice: () => {} });
    try {
      const killed = await sql`select pg_terminate_backend(l.pid) as done
      from pg_locks l join nodes n on l.objid::bigint = n.key
      where n.id = 'node-2' and l.locktype = 'advisory' and l.granted and l.objsubid = 2
        and l.classid::bigint = ${NODE_LOCK_SPACE}`;
      assert.equal(killed.length, 1);
    } finally {
      await sql.end({ timeout: 5 });
    }

    // Node 1's watcher ticks every 2 s and reports a lock gone for 4 s.
    await eventually("yoda told that hans and vader logged out", () => {
      one.ticks.advance(2_000);
      const lines = yoda.eventLines;
      return lines.includes("hans logged out") && lines.includes("vader logged out");
    });
    assert.deepEqual((await yoda.cmd("whoelse")).lines, ["No other user is online."]);
    assert.doesNotMatch((await yoda.cmd("ATU")).lines.join("\n"), /hans|vader/);
    await eventually("userlog.txt with yoda alone on both nodes", () => {
      const log = one.file("userlog.txt");
      return log === two.file("userlog.txt") && /^1; .*; yoda; .*; 8001\n$/.test(log);
    });
    assert.equal(hans.eventLines.includes("yoda logged out"), false);
  },
);

pgTest(
  "while PostgreSQL is down a MSG is answered Service unavailable, and works again after",
  async () => {
    await using pg = await startPostgres();
    await using nodes = await twoNodes({}, pg.url);
    const yoda = await loggedIn(nodes.one, "yoda", "jedi");
    assert.equal((await yoda.cmd("MSG before")).ok, true);
    await pg.restart(async () => {
      const reply = await yoda.cmd("MSG while down");
      assert.equal(reply.ok, false);
      assert.equal(reply.code, "unavailable");
      assert.deepEqual(reply.lines, [UNAVAILABLE]);
      assert.equal(UNAVAILABLE, "Service unavailable, try again");
      // The connection stays: a command that needs no store still works.
      assert.equal((await yoda.cmd("whoelse")).ok, true);
    });
    const after = await eventually("a MSG taken after the restart", async () => {
      const reply = await yoda.cmd("MSG after");
      return reply.ok ? reply : undefined;
    });
    assert.match(after.lines.join(), /#2/);
    assert.match(
      nodes.one.file("messagelog.txt"),
      /^1; .*; yoda; before; no\n2; .*; yoda; after; no\n$/,
    );
  },
);

pgTest(
  "PostgreSQL gone silent: commands are answered unavailable by the deadline, and may still happen",
  async () => {
    const url = await (await sharedPostgres()).createDatabase();
    const port = new URL(url).port;
    // Node 1 reaches the database through a relay the test can freeze; node 2 directly.
    await using relay = startRelay(Number(port));
    const silent = url.replace(`:${port}/`, `:${relay.port}/`);
    const config = { commandBurst: 100 };
    // A deadline well past what a proposal takes on a loaded machine, well short of a test's patience.
    const deadline = { ms: 1_500 };
    await using one = await startClusterServer(silent, "node-1", config, { deadline });
    await using two = await startClusterServer(url, "node-2", config);
    const yoda = await loggedIn(one, "yoda", "jedi");
    const hans = await loggedIn(two, "hans", "falcon");
    relay.freeze();
    const reply = await yoda.cmd("MSG said into the silence");
    assert.deepEqual([reply.ok, reply.code, reply.lines], [false, "unavailable", [IN_DOUBT]]);
    // A login there is not let in, and is not left half in once the database answers.
    const obiwan = await one.connect().login("obiwan", "hellothere");
    assert.deepEqual([obiwan.ok, obiwan.code], [false, "unavailable"]);
    // The connection stays, and what needs no database still works.
    assert.equal((await yoda.cmd("whoelse")).ok, true);
    relay.thaw();
    // It had been asked, and was done once the database answered: node 2 has it.
    await eventually(
      "the post made in doubt, in node 2's messagelog.txt",
      () => two.file("messagelog.txt").includes("; yoda; said into the silence; no\n"),
    );
    // Node 1 is heard again: a post made there now is acknowledged, and reaches node 2.
    await eventually("a MSG on node 1 acknowledged after the silence", async () => {
      return (await yoda.cmd("MSG heard again")).ok;
    });
    await eventually(
      "node 1's new post in node 2's messagelog.txt",
      () => two.file("messagelog.txt").includes("; yoda; heard again; no\n"),
    );
    assert.deepEqual((await hans.cmd("whoelse")).lines, ["yoda"]);
  },
);
