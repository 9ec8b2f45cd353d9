/**
 * End-to-end, a cluster of real processes (testing/cluster_programs.ts): several built chat-server
 * programs on one PostgreSQL database, driven by raw protocol clients over plain TCP on 127.0.0.1.
 * A broadcast, ATU and a direct message cross the nodes, and every node writes the same
 * userlog.txt and messagelog.txt; a node killed with SIGKILL has its users logged out on the
 * others (presence notices, ATU) and they can log in again elsewhere; a DLT on one node racing MSGs
 * on the others leaves every node's board the same, numbered without gaps; a good password racing
 * the lockout on another node, a second login and offline mail are decided once for the cluster;
 * the first node's credentials.txt seeds the cluster's accounts, and every node's file becomes a
 * hashed copy of them.
 * A PostgreSQL restart under running nodes is e2e_cluster_restart_test.ts's. The in-process
 * cluster tests (tests/server/cluster_*_test.ts) cover each rule in detail; these prove the
 * programs do it. Each test's failsafe kills every process it started and removes every
 * directory; the PostgreSQL server is the file's (testing/postgres.ts), a fresh database per test.
 */
import assert from "node:assert/strict";
import {
  clusterTest,
  heard,
  linesOf,
  type Post,
  posted,
  postsIn,
  postsRead,
  sameOnEveryNode,
  startCluster,
  usersIn,
  usersOf,
} from "../testing/cluster_programs.ts";
import { parseTimestamp } from "../lib/shared/timestamp.ts";
import { eventually } from "../testing/eventually.ts";
import { startServerProgram } from "../testing/programs.ts";
import { loggedIn, PASSWORDS, SERVER_ARGS } from "../testing/raw_client.ts";

clusterTest(
  "three chat-server processes are one system: broadcast, ATU, messages and the same logs",
  45_000,
  async () => {
    await using cluster = await startCluster(3);
    const { nodes } = cluster;
    // Logged in one after the other, so every userlog.txt lists them in this order.
    const yoda = await cluster.login(0, "yoda");
    const vader = await cluster.login(1, "vader");
    const obiwan = await cluster.login(1, "obiwan");
    const hans = await cluster.login(2, "hans");
    const luke = await cluster.login(2, "luke");
    const everyone = ["yoda", "vader", "obiwan", "hans", "luke"];
    await heard(yoda, "presence", "luke logged in");

    assert.deepEqual((await yoda.cmd("broadcast may the force")).lines, [
      "Message broadcast to 4 users.",
    ]);
    for (const client of [vader, obiwan, hans, luke]) {
      await heard(client, "broadcast", "yoda: may the force");
    }
    assert.deepEqual(usersOf((await hans.cmd("ATU")).lines), ["luke", "obiwan", "vader", "yoda"]);
    assert.deepEqual(usersOf((await yoda.cmd("ATU")).lines), ["hans", "luke", "obiwan", "vader"]);

    assert.deepEqual((await hans.cmd("message yoda hello there")).lines, [
      "Message sent to yoda.",
    ]);
    await heard(yoda, "message", "hans: hello there");
    // A second message after it: once it is here, a doubled first one would have been too.
    assert.deepEqual((await hans.cmd("message yoda still there?")).lines, [
      "Message sent to yoda.",
    ]);
    await heard(yoda, "message", "hans: still there?");
    assert.deepEqual(linesOf(yoda, "message"), ["hans: hello there", "hans: still there?"]);
    assert.deepEqual(linesOf(vader, "broadcast"), ["yoda: may the force"]);

    // Posts from every node, one after the other: the same numbers everywhere.
    assert.equal(posted(await vader.cmd("MSG from node two")).number, 1);
    assert.equal(posted(await luke.cmd("MSG from node three")).number, 2);
    assert.equal(posted(await yoda.cmd("MSG from node one")).number, 3);

    const userlog = await sameOnEveryNode(
      nodes,
      "userlog.txt",
      (text) => usersIn(text).join() === everyone.join(),
    );
    assert.match(userlog, /^1; .*; yoda; 127\.0\.0\.1; 0\n2; .*; vader; /);
    // Every node has written the last post (the others' files may lag their replicas).
    const messagelog = await sameOnEveryNode(
      nodes,
      "messagelog.txt",
      (text) => text.includes("; from node one; "),
    );
    assert.deepEqual(postsIn(messagelog), [
      { number: 1, author: "vader", text: "from node two" },
      { number: 2, author: "luke", text: "from node three" },
      { number: 3, author: "yoda", text: "from node one" },
    ]);
  },
);

clusterTest(
  "a node killed with SIGKILL: its users are logged out on the others and can log in again",
  45_000,
  async () => {
    await using cluster = await startCluster(3);
    const [, doomed] = cluster.nodes;
    const yoda = await cluster.login(0, "yoda");
    const vader = await cluster.login(1, "vader");
    const obiwan = await cluster.login(1, "obiwan");
    const hans = await cluster.login(2, "hans");
    await heard(yoda, "presence", "hans logged in");
    assert.deepEqual(usersOf((await hans.cmd("ATU")).lines), ["obiwan", "vader", "yoda"]);

    const killedAt = performance.now();
    await doomed!.crash();
    await Promise.all([vader.link.closed, obiwan.link.closed]);
    // The issue asks for 10 s; only that it happens is asserted (a loaded machine is slower).
    await eventually(
      "vader and obiwan shown logged out on both other nodes",
      () =>
        [yoda, hans].every((client) =>
          ["vader logged out", "obiwan logged out"].every((line) =>
            linesOf(client, "presence").includes(line)
          )
        ),
      { timeoutMs: 30_000, everyMs: 50 },
    );
    console.log(
      `the killed node's users were shown logged out ${
        ((performance.now() - killedAt) / 1000).toFixed(1)
      } s after the kill`,
    );
    // One survivor reported the loss (once across the cluster) and says so to its operator.
    const survivors = [cluster.nodes[0]!, cluster.nodes[2]!];
    const reported = "Cluster node node-2 lost; logged out: vader, obiwan";
    await eventually(
      "the loss reported",
      () => survivors.some((node) => node.program.stderr.includes(reported)),
    );
    assert.equal(survivors.filter((node) => node.program.stderr.includes(reported)).length, 1);
    assert.deepEqual(usersOf((await yoda.cmd("ATU")).lines), ["hans"]);
    assert.deepEqual(usersOf((await hans.cmd("ATU")).lines), ["yoda"]);
    assert.deepEqual((await yoda.cmd("whoelsesince 600")).lines.sort(), [
      "hans",
      "obiwan",
      "vader",
    ]);

    // They log in again on a surviving node, and everyone there and elsewhere hears of it.
    const vaderAgain = await cluster.login(2, "vader");
    const obiwanAgain = await cluster.login(0, "obiwan");
    await heard(yoda, "presence", "vader logged in");
    await heard(hans, "presence", "obiwan logged in");
    assert.deepEqual(usersOf((await vaderAgain.cmd("ATU")).lines), ["hans", "obiwan", "yoda"]);
    assert.deepEqual((await obiwanAgain.cmd("message vader back again")).lines, [
      "Message sent to vader.",
    ]);
    await heard(vaderAgain, "message", "obiwan: back again");
    await sameOnEveryNode(
      survivors,
      "userlog.txt",
      (text) => usersIn(text).join() === "yoda,hans,vader,obiwan",
    );
  },
);

clusterTest(
  "a DLT on one node racing MSGs on the others: every node's board the same, numbered 1…n",
  45_000,
  async () => {
    await using cluster = await startCluster(3);
    const { nodes } = cluster;
    const yoda = await cluster.login(0, "yoda");
    const vader = await cluster.login(1, "vader");
    const hans = await cluster.login(2, "hans");
    /** The board as it must end, but for the order of each round's two racing posts. */
    const expected: Array<Omit<Post, "number">> = [];
    const ROUNDS = 5;
    /** How many racing posts were decided before the DLT, and how many after. */
    const decided = { before: 0, after: 0 };
    for (let round = 1; round <= ROUNDS; round++) {
      const victim = posted(await yoda.cmd(`MSG victim ${round}`));
      expected.push({ author: "yoda", text: `victim ${round}` });
      // A post after the victim, renumbered by its deletion.
      posted(await vader.cmd(`MSG after victim ${round}`));
      expected.push({ author: "vader", text: `after victim ${round}` });

      const [deleted, fromVader, fromHans] = await Promise.all([
        yoda.cmd(`DLT #${victim.number} ${victim.at}`),
        vader.cmd(`MSG race ${round} from vader`),
        hans.cmd(`MSG race ${round} from hans`),
      ]);
      // Stamped when it was deleted: the post's second, or a later one.
      assert.equal(deleted.lines.length, 1);
      const at = /^Message #(\d+) deleted at (.+)\.$/.exec(deleted.lines[0]!);
      assert.equal(at?.[1], String(victim.number), deleted.lines[0]);
      assert.ok(parseTimestamp(at[2]!)! >= parseTimestamp(victim.at)!, deleted.lines[0]);
      expected.splice(expected.findIndex((post) => post.text === `victim ${round}`), 1);
      const racers = [
        { reply: posted(fromVader), author: "vader", text: `race ${round} from vader` },
        { reply: posted(fromHans), author: "hans", text: `race ${round} from hans` },
      ];
      const messagelog = await sameOnEveryNode(
        nodes,
        "messagelog.txt",
        // Once all three are in on every node (a node's file may lag the replies).
        (text) =>
          racers.every((racer) => text.includes(`; ${racer.text}; `)) &&
          !text.includes(`; victim ${round}; `),
      );
      const board = postsIn(messagelog);
      assert.deepEqual(board.map((post) => post.number), board.map((_, index) => index + 1));
      const placed = racers.map((racer) => board.findIndex((post) => post.text === racer.text));
      // Each racer's reply named its number when it was decided: the DLT, if decided after it,
      // moved it down by one since; otherwise it is where the reply said.
      for (const [index, racer] of racers.entries()) {
        const now = placed[index]! + 1;
        const moved = racer.reply.number - now;
        assert.ok(
          moved === 0 || moved === 1,
          `${racer.text}: posted as #${racer.reply.number}, now #${now}`,
        );
        decided[moved === 1 ? "before" : "after"]++;
      }
      for (const index of [...placed].sort((a, b) => a - b)) {
        const racer = racers.find((_, i) => placed[i] === index)!;
        expected.push({ author: racer.author, text: racer.text });
      }
      assert.deepEqual(board.map(({ author, text }) => ({ author, text })), expected);
      // RDM on every node reads the same board as its file says.
      for (const client of [yoda, vader, hans]) {
        assert.deepEqual(
          postsRead((await client.cmd("RDM 01 Jan 2000 00:00:00")).lines),
          board,
        );
      }
    }
    console.log(
      `${ROUNDS} rounds: ${decided.before} racing posts decided before the DLT, ` +
        `${decided.after} after; the board ends with ${expected.length} posts on every node`,
    );
  },
);

clusterTest(
  "across processes: a lockout races a good password, a second login is refused, mail comes once",
  30_000,
  async () => {
    await using cluster = await startCluster(2);
    // Three wrong passwords in a row (chat-server's argument) lock an account on both nodes; a
    // good password on node 2 racing the third wrong one on node 1 either comes first (the count
    // starts again) or is refused, even when node 2 checked it before it had applied the lockout.
    const asking = async (index: number, user: string) => {
      const client = await cluster.connect(index);
      assert.ok((await client.user(user)).ok);
      return client;
    };
    const outcomes = { "logged in first": 0, "refused after the lockout": 0 };
    for (const user of ["obiwan", "leia", "lando", "chewie"]) {
      assert.equal((await (await asking(0, user)).pass("wrong")).code, "bad-password");
      assert.equal((await (await asking(1, user)).pass("wrong")).code, "bad-password");
      const [wrong, good] = await Promise.all([asking(0, user), asking(1, user)]);
      const [third, login] = await Promise.all([wrong.pass("wrong"), good.pass(PASSWORDS[user]!)]);
      if (login.ok) {
        outcomes["logged in first"]++;
        assert.deepEqual([third.code, third.lines], ["bad-password", [
          "Invalid Password. Please try again",
        ]]);
        await good.logOut();
        continue;
      }
      outcomes["refused after the lockout"]++;
      assert.deepEqual([third.code, third.lines], ["locked", [
        "Invalid Password. Your account has been blocked. Please try again later",
      ]]);
      for (const refused of [login, await (await asking(0, user)).pass(PASSWORDS[user]!)]) {
        assert.deepEqual([refused.code, refused.lines], ["blocked", [
          "Your account is blocked due to multiple login failures. Please try again later",
        ]]);
      }
    }
    console.log(`a good password racing the third wrong one: ${JSON.stringify(outcomes)}`);

    // Offline messages for luke, left on node 1; then luke logs in on both nodes at once.
    const yoda = await cluster.login(0, "yoda");
    for (const text of ["one", "two", "three"]) {
      assert.deepEqual((await yoda.cmd(`message luke ${text}`)).lines, [
        "luke is offline; the message will be delivered when they log in.",
      ]);
    }
    const racing = await Promise.all([cluster.connect(0), cluster.connect(1)]);
    const replies = await Promise.all(racing.map(async (client) => {
      await client.user("luke");
      return await client.pass(PASSWORDS.luke!);
    }));
    const won = replies.findIndex((reply) => reply.ok);
    assert.ok(won >= 0, JSON.stringify(replies));
    const lost = replies[1 - won]!;
    assert.deepEqual([lost.ok, lost.code, lost.lines], [false, "already-online", [
      "luke is already logged in",
    ]]);
    const luke = racing[won]!;
    await heard(luke, "message", "yoda: three");
    // A message after them: once it is here, a doubled offline one would have been too.
    assert.deepEqual((await yoda.cmd("message luke four")).lines, ["Message sent to luke."]);
    await heard(luke, "message", "yoda: four");
    assert.deepEqual(linesOf(luke, "message"), [
      "yoda: one",
      "yoda: two",
      "yoda: three",
      "yoda: four",
    ]);
    assert.deepEqual(usersOf((await yoda.cmd("ATU")).lines), ["luke"]);
  },
);

clusterTest(
  "the first node's credentials.txt seeds the cluster; a node started without one gets it, hashed",
  45_000,
  async () => {
    await using cluster = await startCluster(1);
    const [first] = cluster.nodes;
    // Its clear-text file is the cluster's now, written back hashed: no warning is true of it.
    const hashed = (text: string) =>
      text.trim().split("\n").every((line) => / scrypt\$/.test(line));
    await eventually(
      "node 1's credentials.txt hashed",
      async () => hashed(await first!.read("credentials.txt")),
    );
    assert.doesNotMatch(first!.program.stderr, /clear-text|not found/);
    await using second = await startServerProgram("", [
      ...SERVER_ARGS,
      "--database",
      cluster.url,
      "--node-id",
      "node-2",
      "--credentials",
      "accounts.txt",
    ]);
    assert.doesNotMatch(second.program.stderr, /not found/);
    using obiwan = await loggedIn(second.port, "obiwan");
    assert.equal((await obiwan.cmd("whoelse")).ok, true);
    const copied = await second.read("accounts.txt");
    assert.ok(hashed(copied), copied);
    assert.deepEqual(
      copied.trim().split("\n").map((line) => line.split(" ")[0]).sort(),
      Object.keys(PASSWORDS).sort(),
    );
  },
);
