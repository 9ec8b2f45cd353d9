/** The message board of lib/server/message_board.ts: numbering, edits, deletes and the log file. */
import assert from "node:assert/strict";
import { FakeClock } from "../../lib/shared/clock.ts";
import { CommandError } from "../../lib/shared/errors.ts";
import { MemoryFiles } from "../../lib/server/files.ts";
import {
  type Changed,
  MessageBoard,
  type NumberedMessage,
} from "../../lib/server/message_board.ts";
import { settleMicrotasks, SlowFiles } from "../../testing/slow_files.ts";

const LOG = "messagelog.txt";
const T0 = new Date(2021, 1, 23, 15, 0, 0).getTime();
const TS0 = "23 Feb 2021 15:00:00";

function setUp() {
  const files = new MemoryFiles();
  const clock = new FakeClock(T0);
  const board = new MessageBoard(files, LOG, clock);
  const log = () => files.contents.get(LOG);
  return { files, clock, board, log };
}

/** What a change returned, once it is written down, without its `committed` promise. */
async function settled(changed: Promise<Changed>): Promise<NumberedMessage> {
  const { committed, ...message } = await changed;
  await committed;
  return message;
}

function assertCommandError(message: string): (error: unknown) => true {
  return (error: unknown) => {
    assert.ok(error instanceof CommandError, `expected a CommandError, got ${error}`);
    assert.equal(error.message, message);
    return true;
  };
}

Deno.test("MessageBoard.post() numbers messages from 1", async () => {
  const { board } = setUp();
  assert.equal((await board.post("yoda", "one")).number, 1);
  assert.equal((await board.post("hans", "two")).number, 2);
  assert.equal((await board.post("yoda", "three")).number, 3);
  assert.equal(board.size, 3);
});

Deno.test("MessageBoard.post() returns the message with its time and edited flag", async () => {
  const { board, clock } = setUp();
  clock.advance(1234);
  assert.deepEqual(await settled(board.post("yoda", "hello")), {
    author: "yoda",
    text: "hello",
    time: T0 + 1000,
    edited: false,
    number: 1,
  });
});

Deno.test("MessageBoard.post() writes the log line in the spec's exact format", async () => {
  const { board, log } = setUp();
  await board.post("yoda", "text");
  assert.equal(log(), `1; ${TS0}; yoda; text; no\n`);
});

Deno.test("MessageBoard.post() appends one line per message", async () => {
  const { board, clock, log } = setUp();
  await board.post("yoda", "do or do not, there is no try");
  clock.advance(61_000);
  await board.post("hans", "never tell me the odds");
  assert.equal(
    log(),
    `1; ${TS0}; yoda; do or do not, there is no try; no\n` +
      "2; 23 Feb 2021 15:01:01; hans; never tell me the odds; no\n",
  );
});

Deno.test("MessageBoard.post() keeps text verbatim in the log", async () => {
  const { board, log } = setUp();
  await board.post("yoda", "  spaces;  semicolons; 日本語  ");
  assert.equal(log(), `1; ${TS0}; yoda;   spaces;  semicolons; 日本語  ; no\n`);
});

Deno.test("MessageBoard.post() writes concurrent posts in number order", async () => {
  const { board, log } = setUp();
  const posted = await Promise.all(["a", "b", "c"].map((text) => board.post("yoda", text)));
  assert.deepEqual(posted.map((m) => m.number), [1, 2, 3]);
  assert.equal(
    log(),
    `1; ${TS0}; yoda; a; no\n2; ${TS0}; yoda; b; no\n3; ${TS0}; yoda; c; no\n`,
  );
});

Deno.test("MessageBoard.reset() empties the board and the file", async () => {
  const { board, files, log } = setUp();
  files.contents.set(LOG, "1; stale; line; from; before\n");
  await board.reset();
  assert.equal(log(), "");
  await board.post("yoda", "x");
  await board.reset();
  assert.equal(board.size, 0);
  assert.equal(log(), "");
  assert.equal((await board.post("yoda", "y")).number, 1);
});

Deno.test("MessageBoard.remove() deletes and renumbers later messages and the file", async () => {
  const { board, clock, log } = setUp();
  await board.post("yoda", "one");
  clock.advance(1000);
  await board.post("hans", "two");
  clock.advance(1000);
  await board.post("leia", "three");
  clock.advance(1000);
  const removed = await settled(board.remove(1, T0, "yoda"));
  assert.deepEqual(removed, {
    author: "yoda",
    text: "one",
    time: T0 + 3000,
    edited: false,
    number: 1,
  });
  assert.equal(board.size, 2);
  assert.equal(
    log(),
    "1; 23 Feb 2021 15:00:01; hans; two; no\n2; 23 Feb 2021 15:00:02; leia; three; no\n",
  );
  assert.deepEqual(board.since(0).map((m) => [m.number, m.text]), [[1, "two"], [2, "three"]]);
});

Deno.test("MessageBoard.remove() of the last message leaves an empty file", async () => {
  const { board, log } = setUp();
  await board.post("yoda", "only");
  await board.remove(1, T0, "yoda");
  assert.equal(log(), "");
  assert.equal(board.size, 0);
});

Deno.test("MessageBoard.post() after a delete takes the next free number", async () => {
  const { board, clock, log } = setUp();
  await board.post("yoda", "one");
  await board.post("yoda", "two");
  await board.post("yoda", "three");
  await board.remove(2, T0, "yoda");
  clock.advance(5000);
  const next = await board.post("hans", "four");
  assert.equal(next.number, 3);
  assert.equal(
    log(),
    `1; ${TS0}; yoda; one; no\n2; ${TS0}; yoda; three; no\n` +
      "3; 23 Feb 2021 15:00:05; hans; four; no\n",
  );
});

Deno.test("MessageBoard.edit() replaces text, sets the edit time and marks it edited", async () => {
  const { board, clock, log } = setUp();
  await board.post("yoda", "one");
  await board.post("hans", "two");
  clock.advance(90_500);
  const edited = await settled(board.edit(1, T0, "yoda", "uno"));
  assert.deepEqual(edited, {
    author: "yoda",
    text: "uno",
    time: T0 + 90_000,
    edited: true,
    number: 1,
  });
  assert.equal(log(), `1; 23 Feb 2021 15:01:30; yoda; uno; yes\n2; ${TS0}; hans; two; no\n`);
});

Deno.test("MessageBoard.edit() needs the new timestamp for a second edit", async () => {
  const { board, clock } = setUp();
  await board.post("yoda", "one");
  clock.advance(10_000);
  await board.edit(1, T0, "yoda", "two");
  await assert.rejects(
    () => board.edit(1, T0, "yoda", "three"),
    assertCommandError(`Timestamp ${TS0} does not match Message #1.`),
  );
  await board.edit(1, T0 + 10_000, "yoda", "three");
  assert.equal(board.since(0)[0]?.text, "three");
});

Deno.test("MessageBoard.remove() ignores milliseconds in the given timestamp", async () => {
  const { board } = setUp();
  await board.post("yoda", "one");
  await board.remove(1, T0 + 999, "yoda");
  assert.equal(board.size, 0);
});

for (const verb of ["delete", "edit"] as const) {
  const act = (board: MessageBoard, number: number, time: number, user: string) =>
    verb === "delete" ? board.remove(number, time, user) : board.edit(number, time, user, "new");

  Deno.test(`MessageBoard ${verb}: a missing number fails first`, async () => {
    const { board } = setUp();
    await board.post("yoda", "one");
    for (const number of [0, -1, 2, 99]) {
      await assert.rejects(
        () => act(board, number, T0 + 5000, "hans"),
        assertCommandError(`Message #${number} does not exist.`),
      );
    }
  });

  Deno.test(`MessageBoard ${verb}: a wrong timestamp fails before a wrong author`, async () => {
    const { board } = setUp();
    await board.post("yoda", "one");
    await assert.rejects(
      () => act(board, 1, T0 + 5000, "hans"),
      assertCommandError("Timestamp 23 Feb 2021 15:00:05 does not match Message #1."),
    );
  });

  Deno.test(`MessageBoard ${verb}: another author is unauthorised`, async () => {
    const { board, log } = setUp();
    await board.post("yoda", "one");
    await board.post("hans", "two");
    await assert.rejects(
      () => act(board, 2, T0, "yoda"),
      assertCommandError(`Unauthorised to ${verb} Message #2.`),
    );
    await assert.rejects(
      () => act(board, 1, T0, "Yoda"),
      assertCommandError(`Unauthorised to ${verb} Message #1.`),
    );
    assert.equal(log(), `1; ${TS0}; yoda; one; no\n2; ${TS0}; hans; two; no\n`);
    assert.equal(board.size, 2);
  });
}

Deno.test("MessageBoard.since() returns messages strictly later, oldest first", async () => {
  const { board, clock } = setUp();
  await board.post("yoda", "at T0");
  clock.advance(1000);
  await board.post("hans", "at T0+1");
  clock.advance(1000);
  await board.post("yoda", "at T0+2");
  assert.deepEqual(board.since(T0).map((m) => [m.number, m.text]), [[2, "at T0+1"], [
    3,
    "at T0+2",
  ]]);
  assert.deepEqual(board.since(T0 + 2000), []);
  assert.equal(board.since(T0 - 1000).length, 3);
});

Deno.test("MessageBoard.since() orders an edited message by its edit time", async () => {
  const { board, clock } = setUp();
  await board.post("yoda", "first");
  clock.advance(1000);
  await board.post("hans", "second");
  clock.advance(1000);
  await board.edit(1, T0, "yoda", "first, edited");
  const since = board.since(T0);
  assert.deepEqual(since.map((m) => [m.number, m.text, m.edited]), [
    [2, "second", false],
    [1, "first, edited", true],
  ]);
});

Deno.test("MessageBoard.since() breaks time ties by number", async () => {
  const { board } = setUp();
  await board.post("yoda", "a");
  await board.post("hans", "b");
  await board.post("leia", "c");
  assert.deepEqual(board.since(T0 - 1).map((m) => m.number), [1, 2, 3]);
});

Deno.test("MessageBoard.since() returns copies that do not change the board", async () => {
  const { board } = setUp();
  await board.post("yoda", "a");
  const [copy] = board.since(0);
  copy!.text = "changed";
  assert.equal(board.since(0)[0]?.text, "a");
});

Deno.test("MessageBoard writes to a TextFiles it is given, not only MemoryFiles", async () => {
  const files = new SlowFiles();
  const board = new MessageBoard(files, LOG, new FakeClock(T0));
  const posted = board.post("yoda", "one");
  await settleMicrotasks();
  // The board has the message while its line is still on its way to the file.
  assert.equal(board.size, 1);
  assert.equal(files.waiting, 1);
  assert.equal(files.inner.contents.get(LOG), undefined);
  files.release();
  await posted;
  assert.equal(files.inner.contents.get(LOG), `1; ${TS0}; yoda; one; no\n`);
});
