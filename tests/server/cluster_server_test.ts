/**
 * Cluster mode in the server core (lib/server/cluster/cluster.ts): two chat servers in-process,
 * nodes of one cluster on one PostgreSQL database, driven by protocol clients. The board, offline
 * messages and blocks go through the change log: posts made on both nodes at once get contiguous
 * numbers and both nodes show one board (RDM and messagelog.txt), a DLT racing an MSG ends the
 * same everywhere, a mailbox's limit counts what both nodes stored, and a block made on one node
 * holds on the other once its reply has come (decide() checks a message's block).
 */
import assert from "node:assert/strict";
import type { Reply } from "../../lib/client/server_link.ts";
import { decide } from "../../lib/server/cluster/proposals.ts";
import { BLOCKED_MESSAGE } from "../../lib/server/relations.ts";
import { memoryStorage } from "../../lib/server/store/journal.ts";
import { type ClusterTestServer, yodaAndHans } from "../../testing/cluster_fixture.ts";
import { eventually } from "../../testing/eventually.ts";
import { postgresTest } from "../../testing/postgres.ts";
import { type TestClient } from "../../testing/server_fixture.ts";
import { testStore } from "../../testing/store_fixture.ts";

Deno.test("decide() refuses an offline message from a sender the recipient has blocked", async () => {
  // What makes a block hold on every node: the message is checked as the cluster decides it.
  await using node = testStore(memoryStorage());
  await node.store.start();
  const mail = { t: "mail", to: "yoda", from: "hans", line: "hans: hi", time: 0 } as const;
  decide(node.store, { t: "block", by: "yoda", other: "hans" });
  const blocked = decide(node.store, mail);
  assert.deepEqual([blocked.outcome, blocked.changes], [
    { ok: false, reason: BLOCKED_MESSAGE },
    [],
  ]);
  assert.equal(node.store.mailbox.count("yoda"), 0);
  decide(node.store, { t: "unblock", by: "yoda", other: "hans" });
  assert.equal(decide(node.store, mail).outcome.ok, true);
});

const pgTest = postgresTest("cluster server tests");

/** messagelog.txt once both nodes have written the same `lines` lines. */
async function sameLog(
  one: ClusterTestServer,
  two: ClusterTestServer,
  lines: number,
): Promise<string> {
  return await eventually(`both nodes' messagelog.txt at ${lines} line(s)`, () => {
    const log = one.file("messagelog.txt");
    const same = log === two.file("messagelog.txt") && log.split("\n").length - 1 === lines;
    return same ? log : undefined;
  });
}

/** The number a `Message #n posted at …` reply gives, and its timestamp. */
function postedAs(reply: Reply): { number: number; at: string } {
  const match = /^Message #(\d+) posted at (.+)\.$/.exec(reply.lines[0] ?? "");
  assert.ok(reply.ok && match, `a post's reply: ${reply.lines.join(" ")}`);
  return { number: Number(match[1]), at: match[2]! };
}

const EVERYTHING = "RDM 23 Feb 2021 14:59:59";

pgTest(
  "MSGs on two nodes at once get contiguous numbers, and both nodes show one board",
  async () => {
    await using nodes = await yodaAndHans();
    const COUNT = 8;
    const post = (client: TestClient, author: string) =>
      Promise.all(Array.from({ length: COUNT }, (_, i) => client.cmd(`MSG ${author} ${i}`)));
    const [byYoda, byHans] = await Promise.all([
      post(nodes.yoda, "yoda"),
      post(nodes.hans, "hans"),
    ]);
    const numbers = [...byYoda, ...byHans].map((reply) => postedAs(reply).number);
    assert.deepEqual(
      numbers.toSorted((a, b) => a - b),
      Array.from({ length: 2 * COUNT }, (_, i) => i + 1),
    );
    const log = await sameLog(nodes.one, nodes.two, 2 * COUNT);
    const board = (await nodes.yoda.cmd(EVERYTHING)).lines;
    assert.deepEqual((await nodes.hans.cmd(EVERYTHING)).lines, board);
    assert.equal(board.length, 2 * COUNT);
    // Each reply's number is where that post is, on both nodes.
    for (const [replies, author] of [[byYoda, "yoda"], [byHans, "hans"]] as const) {
      replies.forEach((reply, i) => {
        const { number } = postedAs(reply);
        assert.match(board[number - 1]!, new RegExp(`^#${number}; ${author}: "${author} ${i}"`));
        assert.match(
          log.split("\n")[number - 1]!,
          new RegExp(`^${number}; .*; ${author} ${i}; no$`),
        );
      });
    }
  },
);

pgTest("hans's DLT on one node racing yoda's MSG on the other ends the same on both", async () => {
  await using nodes = await yodaAndHans();
  const ROUNDS = 4;
  for (let round = 0; round < ROUNDS; round++) {
    const old = postedAs(await nodes.hans.cmd(`MSG old ${round}`));
    const [deleted, posted] = await Promise.all([
      nodes.hans.cmd(`DLT #${old.number} ${old.at}`),
      nodes.yoda.cmd(`MSG new ${round}`),
    ]);
    assert.deepEqual(deleted, {
      ok: true,
      lines: [`Message #${old.number} deleted at ${old.at}.`],
    });
    // Before the delete, yoda's post came after hans's; after it, in its place.
    assert.ok([old.number, old.number + 1].includes(postedAs(posted).number));
  }
  const log = await sameLog(nodes.one, nodes.two, ROUNDS);
  assert.deepEqual(
    log.split("\n").slice(0, -1).map((line) => line.split("; ").slice(2, 4).join(" ")),
    Array.from({ length: ROUNDS }, (_, round) => `yoda new ${round}`),
  );
  assert.deepEqual(
    (await nodes.hans.cmd(EVERYTHING)).lines,
    (await nodes.yoda.cmd(EVERYTHING)).lines,
  );
  // An EDT on one node shows on the other.
  const first = log.split("\n")[0]!.split("; ")[1]!;
  assert.deepEqual((await nodes.yoda.cmd(`EDT #1 ${first} newer`)).lines, [
    `Message #1 edited at ${first}.`,
  ]);
  await eventually(
    "the edit on the other node",
    () => nodes.two.file("messagelog.txt").startsWith(`1; ${first}; yoda; newer; yes\n`),
  );
  // A delete of a message that is gone is refused, with the board's own text.
  const gone = await nodes.hans.cmd(`DLT #${ROUNDS + 1} 23 Feb 2021 15:00:00`);
  assert.deepEqual([gone.ok, gone.lines], [false, [`Message #${ROUNDS + 1} does not exist.`]]);
});

pgTest("offline messages stored from two nodes count toward one mailbox limit", async () => {
  await using nodes = await yodaAndHans({ mailboxLimit: 3, mailboxPerSender: 2 });
  const stored = ["vader is offline; the message will be delivered when they log in."];
  assert.deepEqual((await nodes.yoda.cmd("message vader one")).lines, stored);
  assert.deepEqual((await nodes.yoda.cmd("message vader two")).lines, stored);
  const third = await nodes.yoda.cmd("message vader three");
  assert.deepEqual([third.ok, third.lines], [false, [
    "You already have 2 messages waiting for vader; wait until they log in.",
  ]]);
  assert.deepEqual((await nodes.hans.cmd("message vader three")).lines, stored);
  const full = await nodes.hans.cmd("message vader four");
  assert.deepEqual([full.ok, full.code, full.lines], [false, "failed", [
    "vader has too many messages waiting (3); try again after they log in.",
  ]]);
  for (const node of [nodes.one, nodes.two]) {
    await eventually(
      "three messages waiting on both nodes",
      () => node.server.state.store.mailbox.count("vader") === 3,
    );
  }
});

pgTest("a block made on one node holds on the other once its reply has come", async () => {
  await using nodes = await yodaAndHans();
  for (let round = 0; round < 3; round++) {
    assert.deepEqual((await nodes.yoda.cmd("block hans")).lines, ["hans is blocked"]);
    // yoda is on the other node: the block is checked as the cluster decides the message.
    const refused = await nodes.hans.cmd(`message yoda let me in ${round}`);
    assert.deepEqual([refused.ok, refused.code, refused.lines], [false, "failed", [
      BLOCKED_MESSAGE,
    ]]);
    assert.deepEqual((await nodes.yoda.cmd("unblock hans")).lines, ["hans is unblocked"]);
    assert.deepEqual((await nodes.hans.cmd(`message yoda thanks ${round}`)).lines, [
      "Message sent to yoda.",
    ]);
    await nodes.yoda.waitFor(`hans: thanks ${round}`);
  }
  const again = await nodes.yoda.cmd("unblock hans");
  assert.deepEqual([again.ok, again.lines], [false, ["hans is not blocked."]]);
});
