/**
 * End-to-end, PostgreSQL restarted under a cluster of real processes (testing/cluster_programs.ts):
 * two chat-server programs on a PostgreSQL server of the test's own, a user logged in on each over
 * plain TCP. While the database is away proposals are refused ("Service unavailable, try again")
 * and the connections stay; once it is back nobody is logged out past the liveness watchers'
 * grace, MSG numbers on from the board acknowledged before, and messages cross the nodes once; and
 * a node killed with SIGKILL after the restart is still reported lost, which it is only if the
 * leases came back. tests/server/cluster_restart_test.ts covers the same in-process. Each test's
 * failsafe kills every process it started and removes every directory; its PostgreSQL server is
 * stopped when the test ends, or when the file's tests are done.
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import { UNAVAILABLE } from "../lib/shared/errors.ts";
import {
  clusterTest,
  heard,
  linesOf,
  posted,
  postsIn,
  postsRead,
  sameOnEveryNode,
  startCluster,
  usersOf,
} from "../testing/cluster_programs.ts";
import { eventually } from "../testing/eventually.ts";
import { startPostgres } from "../testing/postgres.ts";
import type { RunningServer } from "../testing/programs.ts";
import type { RawClient } from "../testing/raw_client.ts";

/** Resolves once `node` has written `line` to its stderr (failing after the failsafe). */
async function said(node: RunningServer, line: string, timeoutMs = 15_000): Promise<void> {
  await eventually(`"${line}" on a node's stderr`, () => node.program.stderr.includes(line), {
    timeoutMs,
    everyMs: 50,
  });
}

/** Resolves once every node of a cluster started by startCluster holds its lease again. */
async function leasesBack(nodes: RunningServer[]): Promise<void> {
  for (const [index, node] of nodes.entries()) {
    await said(node, `Cluster node node-${index + 1} holds its lease again`);
  }
}

/**
 * Posts `text` with MSG, again while the node answers "Service unavailable, try again" (its pool
 * may meet a connection the restart closed); any other refusal fails the test.
 */
async function postedOnceBack(
  client: RawClient,
  text: string,
): Promise<{ number: number; tries: number }> {
  let tries = 0;
  return await eventually(`MSG ${text} taken`, async () => {
    tries++;
    const reply = await client.cmd(`MSG ${text}`);
    if (!reply.ok && reply.lines.join() === UNAVAILABLE) return undefined;
    return { number: posted(reply).number, tries };
  }, { timeoutMs: 20_000, everyMs: 50 });
}

/** A pool on `url` for a test's own statements, ended when disposed. */
function testPool(url: string): postgres.Sql & AsyncDisposable {
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  return Object.assign(sql, { [Symbol.asyncDispose]: () => sql.end({ timeout: 5 }) });
}

clusterTest(
  "PostgreSQL restarted mid-session: nobody is logged out, and both nodes work on after it",
  60_000,
  async () => {
    // A server of the test's own, since it is restarted.
    await using pg = await startPostgres();
    await using cluster = await startCluster(2, pg.url);
    const { nodes } = cluster;
    const yoda = await cluster.login(0, "yoda");
    const hans = await cluster.login(1, "hans");
    await heard(yoda, "presence", "hans logged in");
    assert.equal(posted(await yoda.cmd("MSG acknowledged before the restart")).number, 1);

    const stopped = performance.now();
    await pg.restart(async () => {
      // Down until both nodes have noticed and tried to take their leases back in vain.
      for (const [index, node] of nodes.entries()) {
        await said(node, `Cluster node node-${index + 1} lost its lease`);
        await said(node, `Node node-${index + 1} cannot register yet`);
      }
      for (const [client, line] of [[yoda, "MSG while down"], [hans, "MSG also down"]] as const) {
        const reply = await client.cmd(line);
        assert.deepEqual([reply.ok, reply.code, reply.lines], [false, "unavailable", [
          UNAVAILABLE,
        ]]);
      }
      // The connections stay, and what the node's replica answers still works.
      assert.deepEqual((await hans.cmd("whoelse")).lines, ["yoda"]);
      assert.deepEqual(usersOf((await yoda.cmd("ATU")).lines), ["hans"]);
    });
    const back = performance.now();
    const fromTwo = await postedOnceBack(hans, "after the restart from node two");
    const firstTaken = performance.now();
    const fromOne = await postedOnceBack(yoda, "after the restart from node one");
    assert.deepEqual([fromTwo.number, fromOne.number], [2, 3]);
    console.log(
      `PostgreSQL was away ${((back - stopped) / 1000).toFixed(1)} s (stopped, both leases lost ` +
        `and tried again, two MSGs refused, started); the first MSG after it was taken ${
          ((firstTaken - back) / 1000).toFixed(1)
        } s ` +
        `after it was back (try ${fromTwo.tries}; node one's at try ${fromOne.tries})`,
    );

    // Both leases come back; then a node that really is gone, registered now: once a watcher
    // reports it, the watchers have looked for longer than their grace with both live locks held.
    await leasesBack(nodes);
    {
      await using sql = testPool(pg.url);
      await sql`insert into nodes (id, host, port, started) values ('gone', '127.0.0.1', 1, now())`;
    }
    await eventually(
      "the gone node reported lost",
      () =>
        nodes.some((node) =>
          node.program.stderr.includes("Cluster node gone lost; logged out: nobody")
        ),
      { timeoutMs: 30_000, everyMs: 50 },
    );
    console.log(`the watchers' grace was past ${((performance.now() - back) / 1000).toFixed(1)} s`);
    for (const node of nodes) {
      assert.doesNotMatch(node.program.stderr, /Cluster node node-\d (lost;|was reported lost)/);
    }
    for (const client of [yoda, hans]) {
      assert.deepEqual(
        linesOf(client, "presence").filter((line) => line.includes("logged out")),
        [],
      );
    }
    assert.deepEqual(usersOf((await yoda.cmd("ATU")).lines), ["hans"]);
    assert.deepEqual(usersOf((await hans.cmd("ATU")).lines), ["yoda"]);

    // A message across the nodes arrives, once: a second one after it shows no doubled first.
    assert.deepEqual((await yoda.cmd("message hans welcome back")).lines, [
      "Message sent to hans.",
    ]);
    assert.deepEqual((await yoda.cmd("message hans still here")).lines, ["Message sent to hans."]);
    await heard(hans, "message", "yoda: still here");
    assert.deepEqual(linesOf(hans, "message"), ["yoda: welcome back", "yoda: still here"]);

    // The board acknowledged before the restart is there, numbered on from it, on both nodes.
    const board = [
      { number: 1, author: "yoda", text: "acknowledged before the restart" },
      { number: 2, author: "hans", text: "after the restart from node two" },
      { number: 3, author: "yoda", text: "after the restart from node one" },
    ];
    for (const client of [yoda, hans]) {
      assert.deepEqual(postsRead((await client.cmd("RDM 01 Jan 2000 00:00:00")).lines), board);
    }
    const messagelog = await sameOnEveryNode(
      nodes,
      "messagelog.txt",
      (text) => text.includes("; after the restart from node one; "),
    );
    assert.deepEqual(postsIn(messagelog), board);
  },
);

clusterTest(
  "after a PostgreSQL restart, a node killed with SIGKILL is still reported lost",
  60_000,
  async () => {
    await using pg = await startPostgres();
    await using cluster = await startCluster(2, pg.url);
    const [one, two] = cluster.nodes as [RunningServer, RunningServer];
    const yoda = await cluster.login(0, "yoda");
    const hans = await cluster.login(1, "hans");
    await heard(yoda, "presence", "hans logged in");
    await pg.restart();
    // The surviving node's watcher only looks while its own lease is held: it must come back.
    await leasesBack(cluster.nodes);
    assert.equal(linesOf(yoda, "presence").includes("hans logged out"), false);

    const killedAt = performance.now();
    await two.crash();
    await hans.link.closed;
    await eventually(
      "hans shown logged out on node one",
      () => linesOf(yoda, "presence").includes("hans logged out"),
      { timeoutMs: 30_000, everyMs: 50 },
    );
    console.log(
      `after the restart, the killed node's user was shown logged out ${
        ((performance.now() - killedAt) / 1000).toFixed(1)
      } s after the kill`,
    );
    await said(one, "Cluster node node-2 lost; logged out: hans");
    assert.deepEqual(usersOf((await yoda.cmd("ATU")).lines), []);
    // hans logs in again on the surviving node.
    const hansAgain = await cluster.login(0, "hans");
    await eventually(
      "hans shown logged in again",
      () => linesOf(yoda, "presence").filter((line) => line === "hans logged in").length === 2,
    );
    assert.deepEqual(usersOf((await hansAgain.cmd("ATU")).lines), ["yoda"]);
  },
);
