/**
 * The kept board (lib/server/message_board.ts with `keep`): a post, edit or delete shows on the
 * board and in messagelog.txt at once, and is taken back, file and all, when its commit fails;
 * through the server, the command's reply is then the failure. Commits are settled by hand through
 * a gated storage.
 */
import assert from "node:assert/strict";
import { MemoryFiles } from "../../lib/server/files.ts";
import { MessageBoard, type NumberedMessage } from "../../lib/server/message_board.ts";
import { FakeClock } from "../../lib/shared/clock.ts";
import { CommandError } from "../../lib/shared/errors.ts";
import { ahead, gatedStorage } from "../../testing/gated_storage.ts";
import { loggedIn, startServer } from "../../testing/server_fixture.ts";

const LOG = "messagelog.txt";
const BOARD_FAILED = "The server could not save the board; try again later.";
const TS0 = "23 Feb 2021 15:00:00";
const TS1 = "23 Feb 2021 15:00:01";
const TS2 = "23 Feb 2021 15:00:02";

/** A kept board on memory files, a fake clock and a gated journal. */
function keptBoard() {
  const files = new MemoryFiles();
  const clock = new FakeClock();
  const journal = gatedStorage();
  const board = new MessageBoard(files, LOG, clock, { keep: true, journal });
  return { board, clock, journal, log: () => files.contents.get(LOG) ?? "" };
}

/** The board as `since(0)` gives it, in number order: number, author, text, edited. */
function shown(board: MessageBoard): string[] {
  return board.since(0)
    .sort((a, b) => a.number - b.number)
    .map((m: NumberedMessage) =>
      `#${m.number} ${m.author}: ${m.text}${m.edited ? " (edited)" : ""}`
    );
}

/** Expects `committed` to reject with the board's failure. */
async function rejectsAsUnsaved(committed: Promise<void>): Promise<void> {
  await assert.rejects(committed, (error: unknown) => {
    assert.ok(error instanceof CommandError, `expected a CommandError, got ${error}`);
    assert.equal(error.message, BOARD_FAILED);
    return true;
  });
}

/** Posts `texts` as yoda, a second apart, each committed. */
async function postCommitted(
  setUp: ReturnType<typeof keptBoard>,
  texts: string[],
): Promise<number[]> {
  const times: number[] = [];
  for (const text of texts) {
    const posted = await setUp.board.post("yoda", text);
    const [held] = await setUp.journal.waitHeld(1);
    held!.commit();
    await posted.committed;
    times.push(posted.time);
    setUp.clock.advance(1000);
  }
  return times;
}

Deno.test("kept MessageBoard: a committed post, edit and delete are recorded and stay", async () => {
  const setUp = keptBoard();
  const { board, journal } = setUp;
  const [t0] = await postCommitted(setUp, ["one"]);
  const edited = await board.edit(1, t0!, "yoda", "one, revised");
  (await journal.waitHeld(1))[0]!.commit();
  await edited.committed;
  assert.deepEqual(shown(board), ["#1 yoda: one, revised (edited)"]);
  const removed = await board.remove(1, edited.time, "yoda");
  (await journal.waitHeld(1))[0]!.commit();
  await removed.committed;
  assert.equal(board.size, 0);
  assert.deepEqual(journal.recorded.map((change) => change.t), ["post", "post", "unpost"]);
  assert.equal(setUp.log(), "");
});

Deno.test("kept MessageBoard: a post whose commit fails leaves the board and messagelog.txt", async () => {
  const setUp = keptBoard();
  const { board, journal, log } = setUp;
  await postCommitted(setUp, ["one"]);
  const posted = await board.post("yoda", "two");
  const [held] = await journal.waitHeld(1);
  // Shown at once, before its commit.
  assert.equal(posted.number, 2);
  assert.equal(board.size, 2);
  assert.equal(log(), `1; ${TS0}; yoda; one; no\n2; ${TS1}; yoda; two; no\n`);
  held!.fail();
  await rejectsAsUnsaved(posted.committed);
  assert.equal(board.size, 1);
  assert.deepEqual(shown(board), ["#1 yoda: one"]);
  assert.equal(log(), `1; ${TS0}; yoda; one; no\n`);
  // The next post takes number 2.
  await postCommitted(setUp, ["three"]);
  assert.deepEqual(shown(board), ["#1 yoda: one", "#2 yoda: three"]);
  assert.equal(log(), `1; ${TS0}; yoda; one; no\n2; ${TS1}; yoda; three; no\n`);
});

Deno.test("kept MessageBoard: a delete whose commit fails puts the message back at its number", async () => {
  const setUp = keptBoard();
  const { board, journal, log } = setUp;
  const times = await postCommitted(setUp, ["one", "two", "three"]);
  const removed = await board.remove(2, times[1]!, "yoda");
  const [held] = await journal.waitHeld(1);
  assert.equal(held!.change.t, "unpost");
  assert.deepEqual(shown(board), ["#1 yoda: one", "#2 yoda: three"]);
  // A post while the delete waits comes after every message, the deleted one included.
  const later = await board.post("yoda", "four");
  const [, laterHeld] = await journal.waitHeld(2);
  laterHeld!.commit();
  await later.committed;
  held!.fail();
  await rejectsAsUnsaved(removed.committed);
  assert.deepEqual(shown(board), [
    "#1 yoda: one",
    "#2 yoda: two",
    "#3 yoda: three",
    "#4 yoda: four",
  ]);
  const TS3 = "23 Feb 2021 15:00:03";
  assert.equal(
    log(),
    `1; ${TS0}; yoda; one; no\n2; ${TS1}; yoda; two; no\n` +
      `3; ${TS2}; yoda; three; no\n4; ${TS3}; yoda; four; no\n`,
  );
  // It is back with its own timestamp: it can be deleted again with it.
  const again = await board.remove(2, times[1]!, "yoda");
  (await journal.waitHeld(1))[0]!.commit();
  await again.committed;
  assert.deepEqual(shown(board), ["#1 yoda: one", "#2 yoda: three", "#3 yoda: four"]);
});

Deno.test("kept MessageBoard: an edit whose commit fails restores the old text, time and flag", async () => {
  const setUp = keptBoard();
  const { board, journal, log } = setUp;
  const [t0] = await postCommitted(setUp, ["one", "two"]);
  const edited = await board.edit(1, t0!, "yoda", "one, revised");
  const [held] = await journal.waitHeld(1);
  assert.deepEqual(shown(board), ["#1 yoda: one, revised (edited)", "#2 yoda: two"]);
  assert.equal(log(), `1; ${TS2}; yoda; one, revised; yes\n2; ${TS1}; yoda; two; no\n`);
  held!.fail();
  await rejectsAsUnsaved(edited.committed);
  assert.deepEqual(shown(board), ["#1 yoda: one", "#2 yoda: two"]);
  assert.deepEqual(board.since(0).find((m) => m.number === 1)?.time, t0);
  assert.equal(log(), `1; ${TS0}; yoda; one; no\n2; ${TS1}; yoda; two; no\n`);
});

Deno.test("MSG, DLT and EDT whose commits fail reply with the failure and change nothing", async () => {
  const storage = gatedStorage();
  await using test = await startServer({ storage, keepBoard: true });
  const board = test.server.state.store.board;
  const yoda = await loggedIn(test, "yoda", "jedi");
  const commitNext = async () => (await storage.waitHeld(1))[0]!.commit();
  const failNext = async () => (await storage.waitHeld(1))[0]!.fail();
  const one = ahead(yoda.cmd("MSG one"));
  await commitNext();
  assert.deepEqual((await one).lines, [`Message #1 posted at ${TS0}.`]);
  const expectFailure = async (line: string) => {
    const reply = ahead(yoda.cmd(line));
    await failNext();
    assert.deepEqual(await reply, { ok: false, code: "failed", lines: [BOARD_FAILED] }, line);
  };
  test.clock.advance(1000);
  await expectFailure("MSG two");
  assert.equal(board.size, 1);
  assert.equal(test.file("messagelog.txt"), `1; ${TS0}; yoda; one; no\n`);
  await expectFailure(`DLT #1 ${TS0}`);
  assert.equal(board.size, 1);
  await expectFailure(`EDT #1 ${TS0} one, revised`);
  assert.deepEqual((await yoda.cmd("RDM 23 Feb 2021 14:00:00")).lines, [
    `#1; yoda: "one" posted at ${TS0}.`,
  ]);
  assert.equal(test.file("messagelog.txt"), `1; ${TS0}; yoda; one; no\n`);
  // And the board still takes changes that do commit.
  const two = ahead(yoda.cmd("MSG two"));
  await commitNext();
  assert.deepEqual((await two).lines, [`Message #2 posted at ${TS1}.`]);
});
