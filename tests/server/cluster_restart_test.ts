/**
 * A cluster through a PostgreSQL restart, and a node's own lease (issue 12): the leases come back
 * by themselves after a restart, so no live node is reported lost and nobody is logged out; a
 * node restarted under its id logs out what its previous run left online; a node reported lost
 * while it is alive ends its sessions with a line and takes new logins. Chat servers in-process
 * on a PostgreSQL of their own (restarted here) or the file's shared one.
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import { listNodes, NODE_LOCK_SPACE } from "../../lib/server/cluster/liveness.ts";
import { UNAVAILABLE } from "../../lib/shared/errors.ts";
import { LOST_PLACE } from "../../lib/server/roster.ts";
import {
  type ClusterTestServer,
  startClusterServer,
  twoNodes,
} from "../../testing/cluster_fixture.ts";
import { eventually } from "../../testing/eventually.ts";
import { postgresTest, sharedPostgres, startPostgres } from "../../testing/postgres.ts";
import { loggedIn, type TestClient } from "../../testing/server_fixture.ts";

const pgTest = postgresTest("cluster restart tests");

const CONFIG = { commandBurst: 100 };

/** The line a session of a node reported lost is told as it ends. */
const LOST_LINE = (LOST_PLACE as { text: string }).text;

/** Two nodes on the database at `url` (a fresh one if not given), and a pool, closed together. */
async function nodesAndPool(url?: string) {
  const nodes = await twoNodes({}, url);
  const sql = postgres(nodes.url, { max: 2, onnotice: () => {} });
  const close = async () => {
    await nodes.close();
    await sql.end({ timeout: 5 });
  };
  return { ...nodes, sql, close, [Symbol.asyncDispose]: close };
}

/** Lets nodes' lost leases try again until each holds its lease. */
async function registered(...nodes: ClusterTestServer[]): Promise<void> {
  await eventually("the nodes holding their leases again", () => {
    for (const node of nodes) node.leaseTicks.advance(1_000);
    return nodes.every((node) => node.cluster.registered);
  });
}

/** Resolves once `client` has been told `text` (failing after the failsafe, never hanging). */
async function told(client: TestClient, text: string): Promise<void> {
  await eventually(`"${text}"`, () => client.eventLines.some((line) => line.includes(text)));
}

/** Resolves once `client` has been told its node lost its place, and its connection closed. */
async function endedWithLostPlace(client: TestClient): Promise<void> {
  let closed = false;
  void client.link.closed.then(() => closed = true);
  await eventually("the session ended with its line", () => {
    return closed && client.eventLines.includes(LOST_LINE);
  });
}

/** The users ATU lists on a client's node. */
async function listed(client: TestClient): Promise<string> {
  const reply = await client.cmd("ATU");
  assert.equal(reply.ok, true, reply.lines.join("\n"));
  return reply.lines.join("\n");
}

/** Kills the connection holding node `id`'s lock, as a network fault would. */
async function cutOff(sql: postgres.Sql, id: string): Promise<void> {
  const killed = await sql`select pg_terminate_backend(l.pid) as done
    from pg_locks l join nodes n on l.objid::bigint = n.key
    where n.id = ${id} and l.locktype = 'advisory' and l.granted and l.objsubid = 2
      and l.classid::bigint = ${NODE_LOCK_SPACE}`;
  assert.equal(killed.length, 1);
}

pgTest(
  "PostgreSQL restarting mid-session logs nobody out, and the cluster works on after it",
  async () => {
    await using pg = await startPostgres();
    await using nodes = await nodesAndPool(pg.url);
    const { one, two, sql } = nodes;
    const yoda = await loggedIn(one, "yoda", "jedi", 8001);
    const hans = await loggedIn(two, "hans", "falcon", 8002);
    await told(yoda, "hans logged in");
    assert.equal((await yoda.cmd("MSG acknowledged before the restart")).ok, true);

    await pg.restart(async () => {
      await eventually(
        "both leases lost",
        () => !one.cluster.registered && !two.cluster.registered,
      );
      for (const [client, line] of [[yoda, "MSG while down"], [hans, "MSG also down"]] as const) {
        const reply = await client.cmd(line);
        assert.deepEqual([reply.ok, reply.code, reply.lines], [false, "unavailable", [
          UNAVAILABLE,
        ]]);
      }
      // The connections stay: what needs no store still works.
      assert.deepEqual((await hans.cmd("whoelse")).lines, ["yoda"]);
    });
    await registered(one, two);

    // A node that really is gone, registered now: once it is reported, the watchers have looked
    // for longer than their grace with both live nodes' locks held.
    await sql`insert into nodes (id, host, port, started) values ('gone', 'h', 1, now())`;
    await eventually("the gone node reported lost", async () => {
      one.ticks.advance(2_000);
      two.ticks.advance(2_000);
      const ids = await sql`select id from nodes`.catch(() => [{ id: "gone" }]);
      return !ids.some((row) => row.id === "gone");
    });
    assert.deepEqual((await listNodes(sql)).map((node) => node.id), ["node-1", "node-2"]);
    for (const client of [yoda, hans]) {
      assert.equal(client.eventLines.some((line) => line.includes("logged out")), false);
    }
    assert.match(await listed(yoda), /^hans, .*, 8002, /);
    assert.match(await listed(hans), /^yoda, .*, 8001, /);

    // Messages across nodes again (the pools' first queries may meet a connection that died).
    await eventually("a MSG taken after the restart", async () => (await hans.cmd("MSG after")).ok);
    assert.equal((await yoda.cmd("message hans welcome back")).ok, true);
    await told(hans, "welcome back");
    // What was acknowledged before the restart is in the log: a node starting now loads it.
    await using three = await startClusterServer(nodes.url, "node-3", CONFIG);
    const obiwan = await loggedIn(three, "obiwan", "hellothere");
    const board = (await obiwan.cmd("RDM 23 Feb 2021 14:59:59")).lines.join("\n");
    assert.match(board, /^#1; yoda: "acknowledged before the restart"/);
    assert.match(board, /\n#2; hans: "after"/);
  },
);

pgTest("a node restarted at once under its id logs out what its previous run left", async () => {
  const url = await (await sharedPostgres()).createDatabase();
  await using sql = Object.assign(postgres(url, { max: 1, onnotice: () => {} }), {
    [Symbol.asyncDispose]: () => sql.end({ timeout: 5 }),
  });
  await using one = await startClusterServer(url, "node-1", CONFIG);
  const yoda = await loggedIn(one, "yoda", "jedi", 8001);
  // What node-2 killed with SIGKILL leaves before anyone reports it: its row, its lock gone with
  // its connection, and its user online.
  await sql`insert into nodes (id, host, port, started) values ('node-2', 'h', 1, now())`;
  const login = await one.cluster.propose({
    t: "login",
    user: "vader",
    node: "node-2",
    session: "node-2/1",
    ip: "127.0.0.1",
    udpPort: 8003,
    at: one.clock.now(),
    duplicate: "deny",
  });
  assert.equal(login.ok, true);
  await told(yoda, "vader logged in");

  await using two = await startClusterServer(url, "node-2", CONFIG);
  await told(yoda, "vader logged out");
  assert.doesNotMatch(await listed(yoda), /vader/);
  // Its own logins come after: vader logs in again, on the new run.
  const vader = await loggedIn(two, "vader", "sithlord", 8004);
  await eventually("yoda told vader is back", () => {
    return yoda.eventLines.filter((line) => line === "vader logged in").length === 2;
  });
  assert.match(await listed(yoda), /^vader, .*, 8004, /);
  assert.match(await listed(vader), /^yoda, /);
});

pgTest(
  "a node reported lost while alive ends its sessions with a line, then takes new logins",
  async () => {
    await using nodes = await nodesAndPool();
    const { one, two } = nodes;
    const yoda = await loggedIn(one, "yoda", "jedi", 8001);
    const hans = await loggedIn(two, "hans", "falcon", 8002);
    const vader = await loggedIn(two, "vader", "sithlord", 8003);
    await told(yoda, "vader logged in");

    // As node 1's watcher does when node 2's lease has been away past the grace.
    const lost = await one.cluster.propose({ t: "node-lost", node: "node-2", at: 0 });
    assert.deepEqual(lost.ok && lost.users, ["hans", "vader"]);
    for (const client of [hans, vader]) await endedWithLostPlace(client);
    await told(yoda, "hans logged out");
    await told(yoda, "vader logged out");
    assert.equal(hans.eventLines.includes("vader logged out"), false, "nobody on node 2 is told");

    const again = await loggedIn(two, "hans", "falcon", 8004);
    await eventually("yoda told hans is back", () => {
      return yoda.eventLines.filter((line) => line === "hans logged in").length === 2;
    });
    assert.match(await listed(again), /^yoda, /);
    // Hans alone (on his new session), vader gone.
    assert.match(await listed(yoda), /^hans, [^\n]*, 8004, [^\n]*$/);
  },
);

pgTest(
  "a node whose lease comes back to find its row gone logs its own users out and registers anew",
  async () => {
    await using nodes = await nodesAndPool();
    const { one, two, sql } = nodes;
    const yoda = await loggedIn(one, "yoda", "jedi", 8001);
    const hans = await loggedIn(two, "hans", "falcon", 8002);
    await told(yoda, "hans logged in");
    const [before] = await listNodes(sql).then((all) => all.filter((n) => n.id === "node-2"));

    // Node 2 is cut off, and reported lost by a watcher that removed its row and died before it
    // could propose node-lost: only node 2 itself can clear its users now.
    await cutOff(sql, "node-2");
    await sql`delete from nodes where id = 'node-2'`;
    await eventually("node 2 noticing", () => !two.cluster.registered);
    await registered(two);

    await endedWithLostPlace(hans);
    await told(yoda, "hans logged out");
    const [after] = await listNodes(sql).then((all) => all.filter((n) => n.id === "node-2"));
    assert.notEqual(after?.key, before?.key, "registered afresh");

    await loggedIn(two, "hans", "falcon", 8004);
    await eventually("yoda told hans is back", () => {
      return yoda.eventLines.filter((line) => line === "hans logged in").length === 2;
    });
  },
);
