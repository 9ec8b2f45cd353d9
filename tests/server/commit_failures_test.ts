/**
 * When commits fail together or while a reply is held: a failed block ends nothing, changes to one
 * board message that fail in the same commit are all taken back, a passwd lockout waits for the
 * held replies, and an `answer` keeps its place behind them (regressions found in review).
 */
import assert from "node:assert/strict";
import { MemoryFiles } from "../../lib/server/files.ts";
import { MessageBoard } from "../../lib/server/message_board.ts";
import { FakeClock } from "../../lib/shared/clock.ts";
import { gatedStorage } from "../../testing/gated_storage.ts";
import { loggedIn, settle, startServer, type TestServer } from "../../testing/server_fixture.ts";

const LOG = "messagelog.txt";

/** yoda and hans logged in, and hans asked by yoda to chat privately: the ask's id. */
async function askedToChat(test: TestServer) {
  const yoda = await loggedIn(test, "yoda", "jedi", 7001);
  const hans = await loggedIn(test, "hans", "falcon", 7002);
  await yoda.cmd("startprivate hans");
  const event = await hans.waitForEvent((event) => event.kind === "ask");
  return { yoda, hans, ask: (event.data as { ask: number }).ask };
}

Deno.test("a block whose commit fails ends no private session and is not logged", async () => {
  const storage = gatedStorage();
  await using test = await startServer({ storage });
  const { yoda, hans, ask } = await askedToChat(test);
  await hans.link.request({ t: "answer", ask, yes: true });
  await yoda.waitFor("Start private messaging with hans");
  const blocked = yoda.cmd("block hans");
  (await storage.waitHeld(1))[0]!.fail();
  assert.deepEqual(await blocked, {
    ok: false,
    lines: ["The server could not save the block; try again later."],
    code: "failed",
  });
  await settle();
  for (const user of [yoda, hans]) {
    assert.equal(user.events.filter((event) => event.kind === "private-stop").length, 0);
  }
  // The private session is still there for both of them.
  assert.deepEqual((await yoda.cmd("startprivate hans")).lines, [
    "Private messaging with hans is already enabled.",
  ]);
  assert.equal(test.logger.lines.some((line) => line.includes("yoda blocked hans")), false);
});

function keptBoard() {
  const files = new MemoryFiles();
  const journal = gatedStorage();
  const board = new MessageBoard(files, LOG, new FakeClock(), { keep: true, journal });
  return { files, journal, board };
}

Deno.test("two edits of one message failing in one commit leave the committed text", async () => {
  const { files, journal, board } = keptBoard();
  const post = await board.post("yoda", "original");
  (await journal.waitHeld(1))[0]!.commit();
  await post.committed;
  const first = await board.edit(1, post.time, "yoda", "first edit");
  const second = await board.edit(1, first.time, "yoda", "second edit");
  const [one, two] = await journal.waitHeld(2);
  one!.fail();
  two!.fail();
  await assert.rejects(first.committed, /could not save the board/);
  await assert.rejects(second.committed, /could not save the board/);
  assert.deepEqual(board.since(0).map((m) => [m.number, m.text, m.edited]), [
    [1, "original", false],
  ]);
  assert.match(files.contents.get(LOG) ?? "", /^1; .*; yoda; original; no\n$/);
});

Deno.test("a post and its delete failing in one commit leave no trace", async () => {
  const { files, journal, board } = keptBoard();
  const post = await board.post("yoda", "never saved");
  const removed = await board.remove(1, post.time, "yoda");
  const [one, two] = await journal.waitHeld(2);
  one!.fail();
  two!.fail();
  await assert.rejects(post.committed);
  await assert.rejects(removed.committed);
  assert.equal(board.size, 0);
  assert.equal(files.contents.get(LOG), "");
});

Deno.test("a passwd lockout answers the replies held for a commit first", async () => {
  const storage = gatedStorage();
  await using test = await startServer({ storage });
  const yoda = await loggedIn(test, "yoda", "jedi");
  const sent = yoda.cmd("message vader hi");
  const tries = [1, 2, 3].map(() =>
    yoda.link.request({ t: "passwd", old: "wrong", new: "newpass1" })
  );
  const [held] = await storage.waitHeld(1);
  await settle();
  assert.deepEqual(yoda.eventLines, [], "no logout while a reply is held");
  held!.commit();
  assert.deepEqual((await sent).lines, [
    "vader is offline; the message will be delivered when they log in.",
  ]);
  const codes = (await Promise.all(tries)).map((reply) => reply.code);
  assert.deepEqual(codes, ["failed", "failed", "locked"]);
  await yoda.waitFor("You have been logged out: your account is blocked for now");
});

Deno.test("an answer sent behind a held reply is answered, with its events, after it", async () => {
  const storage = gatedStorage();
  await using test = await startServer({ storage });
  const { hans, ask } = await askedToChat(test);
  const order: string[] = [];
  const held = hans.cmd("message vader hold on").then(() => order.push("held reply"));
  const answered = hans.link
    .request({ t: "answer", ask, yes: true })
    .then(() => order.push("answer reply"));
  const [change] = await storage.waitHeld(1);
  await settle();
  assert.equal(hans.events.filter((event) => event.kind === "ticket").length, 0);
  change!.commit();
  await Promise.all([held, answered]);
  await settle();
  assert.deepEqual(order, ["held reply", "answer reply"]);
  assert.equal(hans.events.filter((event) => event.kind === "ticket").length, 1);
});
