import assert from "node:assert/strict";
import { FakeClock } from "../../lib/shared/clock.ts";
import { CommandError } from "../../lib/shared/errors.ts";
import { DiskFiles, MemoryFiles, OrderedWriter, type TextFiles } from "../../lib/server/files.ts";
import { MessageBoard } from "../../lib/server/message_board.ts";

const CAN_USE_DISK = Deno.permissions.querySync({ name: "read" }).state === "granted" &&
  Deno.permissions.querySync({ name: "write" }).state === "granted";

interface Store {
  files: TextFiles;
  /** A path inside the store that does not exist yet. */
  path(name: string): string;
  /** Names left beside the files (to catch stray temporary files). */
  names(): Promise<string[]>;
  close(): Promise<void>;
}

const STORES: { name: string; ignore: boolean; open(): Promise<Store> }[] = [
  {
    name: "MemoryFiles",
    ignore: false,
    open() {
      const files = new MemoryFiles();
      return Promise.resolve({
        files,
        path: (name) => name,
        names: () => Promise.resolve([...files.contents.keys()].sort()),
        close: () => Promise.resolve(),
      });
    },
  },
  {
    name: "DiskFiles",
    ignore: !CAN_USE_DISK,
    async open() {
      const dir = await Deno.makeTempDir({ prefix: "toom_files_test_" });
      return {
        files: new DiskFiles(),
        path: (name) => `${dir}/${name}`,
        async names() {
          const names: string[] = [];
          for await (const entry of Deno.readDir(dir)) names.push(entry.name);
          return names.sort();
        },
        close: () => Deno.remove(dir, { recursive: true }),
      };
    },
  },
];

/** The contract every TextFiles implementation keeps. */
const CONTRACT: [string, (store: Store) => Promise<void>][] = [
  ["read() returns undefined for a missing file", async ({ files, path }) => {
    assert.equal(await files.read(path("missing.txt")), undefined);
  }],
  ["append() creates a missing file", async ({ files, path }) => {
    await files.append(path("log.txt"), "one\n");
    assert.equal(await files.read(path("log.txt")), "one\n");
  }],
  ["append() adds to the end in call order", async ({ files, path }) => {
    await files.append(path("log.txt"), "one\n");
    await files.append(path("log.txt"), "two\n");
    await files.append(path("log.txt"), "three\n");
    assert.equal(await files.read(path("log.txt")), "one\ntwo\nthree\n");
  }],
  ["replace() creates a missing file", async ({ files, path }) => {
    await files.replace(path("log.txt"), "new\n");
    assert.equal(await files.read(path("log.txt")), "new\n");
  }],
  ["replace() replaces the whole text", async ({ files, path }) => {
    await files.append(path("log.txt"), "a long first version\n");
    await files.replace(path("log.txt"), "short\n");
    assert.equal(await files.read(path("log.txt")), "short\n");
  }],
  ["replace() with an empty text leaves an empty file", async ({ files, path }) => {
    await files.append(path("log.txt"), "x\n");
    await files.replace(path("log.txt"), "");
    assert.equal(await files.read(path("log.txt")), "");
  }],
  ["append() after replace() adds to the new text", async ({ files, path }) => {
    await files.replace(path("log.txt"), "1\n");
    await files.append(path("log.txt"), "2\n");
    assert.equal(await files.read(path("log.txt")), "1\n2\n");
  }],
  ["files are independent of each other", async ({ files, path }) => {
    await files.append(path("a.txt"), "a\n");
    await files.replace(path("b.txt"), "b\n");
    assert.equal(await files.read(path("a.txt")), "a\n");
    assert.equal(await files.read(path("b.txt")), "b\n");
  }],
  ["text round-trips byte for byte, CRLF and Unicode included", async ({ files, path }) => {
    const text = "crlf\r\n日本語 😀\n\u0000nul\nno newline";
    await files.replace(path("log.txt"), text);
    assert.equal(await files.read(path("log.txt")), text);
  }],
  ["replace() leaves no temporary file behind", async ({ files, path, names }) => {
    await files.replace(path("log.txt"), "one\n");
    await files.replace(path("log.txt"), "two\n");
    assert.deepEqual(await names(), ["log.txt"]);
  }],
];

for (const store of STORES) {
  for (const [what, check] of CONTRACT) {
    Deno.test({
      name: `${store.name}: ${what}`,
      ignore: store.ignore,
      async fn() {
        const opened = await store.open();
        try {
          await check(opened);
        } finally {
          await opened.close();
        }
      },
    });
  }
}

Deno.test({
  name: "DiskFiles: replace() fails cleanly when the directory is missing",
  ignore: !CAN_USE_DISK,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "toom_files_test_" });
    try {
      await assert.rejects(() => new DiskFiles().replace(`${dir}/nope/log.txt`, "x"));
      assert.deepEqual([...Deno.readDirSync(dir)], []);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

/** Files whose writes finish only when the test says, to check ordering. */
class SlowFiles implements TextFiles {
  readonly inner = new MemoryFiles();
  readonly started: string[] = [];
  readonly #gates: (() => void)[] = [];

  read(path: string): Promise<string | undefined> {
    return this.inner.read(path);
  }

  append(path: string, text: string): Promise<void> {
    return this.#slow(`append ${text}`, () => this.inner.append(path, text));
  }

  replace(path: string, text: string): Promise<void> {
    return this.#slow(`replace ${text}`, () => this.inner.replace(path, text));
  }

  /** Lets the oldest waiting write finish. */
  release(): void {
    this.#gates.shift()?.();
  }

  get waiting(): number {
    return this.#gates.length;
  }

  #slow(label: string, write: () => Promise<void>): Promise<void> {
    this.started.push(label);
    if (label.includes("FAIL")) return Promise.reject(new Error("write failed"));
    return new Promise<void>((resolve) => this.#gates.push(resolve)).then(write);
  }
}

/** Lets every pending promise callback run. */
async function settle(): Promise<void> {
  for (let i = 0; i < 10; i++) await Promise.resolve();
}

Deno.test("OrderedWriter starts each write only after the previous one finished", async () => {
  const files = new SlowFiles();
  const writer = new OrderedWriter(files, "log.txt");
  const done: string[] = [];
  const a = writer.append("a").then(() => done.push("a"));
  const b = writer.replace("b").then(() => done.push("b"));
  const c = writer.append("c").then(() => done.push("c"));
  await settle();
  assert.deepEqual(files.started, ["append a"]);
  files.release();
  await settle();
  // What queued meanwhile goes out as one write: the replace, then the append after it.
  assert.deepEqual(files.started, ["append a", "replace bc"]);
  assert.deepEqual(done, ["a"]);
  files.release();
  await Promise.all([a, b, c]);
  assert.deepEqual(done, ["a", "b", "c"]);
  assert.equal(files.inner.contents.get("log.txt"), "bc");
});

Deno.test("OrderedWriter joins appends queued during a write into one write", async () => {
  const files = new SlowFiles();
  const writer = new OrderedWriter(files, "log.txt");
  const writes = [writer.append("1\n")];
  await settle();
  for (const line of ["2\n", "3\n", "4\n"]) writes.push(writer.append(line));
  files.release();
  await settle();
  assert.deepEqual(files.started, ["append 1\n", "append 2\n3\n4\n"]);
  files.release();
  await Promise.all(writes);
  assert.equal(files.inner.contents.get("log.txt"), "1\n2\n3\n4\n");
});

Deno.test("OrderedWriter keeps going after a failed write, and reports it to its caller", async () => {
  const files = new SlowFiles();
  const writer = new OrderedWriter(files, "log.txt");
  const first = writer.append("1");
  const failed = writer.append("FAIL");
  await settle();
  files.release();
  await first;
  await assert.rejects(failed, { message: "write failed" });
  const third = writer.append("3");
  await settle();
  files.release();
  await third;
  assert.equal(files.inner.contents.get("log.txt"), "13");
});

Deno.test("OrderedWriter writes to its own path", async () => {
  const files = new MemoryFiles();
  const writer = new OrderedWriter(files, "x.txt");
  assert.equal(writer.path, "x.txt");
  assert.equal(writer.files, files);
  await writer.append("hi\n");
  assert.deepEqual([...files.contents], [["x.txt", "hi\n"]]);
});

// --- MessageBoard ---------------------------------------------------------------------------

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
  assert.deepEqual(await board.post("yoda", "hello"), {
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
  const removed = await board.remove(1, T0, "yoda");
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
  const edited = await board.edit(1, T0, "yoda", "uno");
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
  assert.equal(board.size, 1);
  await settle();
  files.release();
  await posted;
  assert.equal(files.inner.contents.get(LOG), `1; ${TS0}; yoda; one; no\n`);
});

Deno.test("OrderedWriter with onError reports a failure, carries on, and heals from the snapshot", async () => {
  const files = new SlowFiles();
  const errors: unknown[] = [];
  let state = "first\n";
  const writer = new OrderedWriter(files, "log.txt", {
    snapshot: () => state,
    onError: (error) => errors.push(error),
  });
  await writer.append("FAIL"); // SlowFiles fails this write; the promise still resolves
  assert.equal(errors.length, 1);
  state += "next\n";
  const next = writer.append("next\n");
  await settle();
  files.release();
  await next;
  assert.equal(errors.length, 1);
  assert.equal(files.started.at(-1), "replace first\nnext\n");
  assert.equal(files.inner.contents.get("log.txt"), "first\nnext\n");
});
