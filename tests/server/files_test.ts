/** The TextFiles contract of lib/server/files.ts (MemoryFiles, DiskFiles) and its OrderedWriter. */
import assert from "node:assert/strict";
import { DiskFiles, MemoryFiles, OrderedWriter, type TextFiles } from "../../lib/server/files.ts";
import { settleMicrotasks, SlowFiles } from "../../testing/slow_files.ts";
import { tempDir } from "../../testing/temp_dir.ts";
import { AccountStore } from "../../lib/server/accounts.ts";
import { MemoryLogger } from "../../lib/shared/logger.ts";

const CAN_USE_DISK = Deno.permissions.querySync({ name: "read" }).state === "granted" &&
  Deno.permissions.querySync({ name: "write" }).state === "granted";

/** A place to keep files in; disposing it removes whatever was written there. */
interface Store extends AsyncDisposable {
  files: TextFiles;
  /** A path inside the store that does not exist yet. */
  path(name: string): string;
  /** Names left beside the files (to catch stray temporary files). */
  names(): Promise<string[]>;
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
        [Symbol.asyncDispose]: () => Promise.resolve(),
      });
    },
  },
  {
    name: "DiskFiles",
    ignore: !CAN_USE_DISK,
    async open() {
      const dir = await tempDir("toom_files_test_");
      return {
        files: new DiskFiles(),
        path: (name) => `${dir.path}/${name}`,
        async names() {
          const names: string[] = [];
          for await (const entry of Deno.readDir(dir.path)) names.push(entry.name);
          return names.sort();
        },
        [Symbol.asyncDispose]: () => dir.remove(),
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
        await using opened = await store.open();
        await check(opened);
      },
    });
  }
}

Deno.test({
  name: "DiskFiles: replace() fails cleanly when the directory is missing",
  ignore: !CAN_USE_DISK,
  async fn() {
    await using dir = await tempDir("toom_files_test_");
    await assert.rejects(() => new DiskFiles().replace(`${dir.path}/nope/log.txt`, "x"));
    assert.deepEqual([...Deno.readDirSync(dir.path)], []);
  },
});

Deno.test("OrderedWriter starts each write only after the previous one finished", async () => {
  const files = new SlowFiles();
  const writer = new OrderedWriter(files, "log.txt");
  const done: string[] = [];
  const a = writer.append("a").then(() => done.push("a"));
  const b = writer.replace("b").then(() => done.push("b"));
  const c = writer.append("c").then(() => done.push("c"));
  await settleMicrotasks();
  assert.deepEqual(files.started, ["append a"]);
  files.release();
  await settleMicrotasks();
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
  await settleMicrotasks();
  for (const line of ["2\n", "3\n", "4\n"]) writes.push(writer.append(line));
  files.release();
  await settleMicrotasks();
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
  await settleMicrotasks();
  files.release();
  await first;
  await assert.rejects(failed, { message: "write failed" });
  const third = writer.append("3");
  await settleMicrotasks();
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
  await settleMicrotasks();
  files.release();
  await next;
  assert.equal(errors.length, 1);
  assert.equal(files.started.at(-1), "replace first\nnext\n");
  assert.equal(files.inner.contents.get("log.txt"), "first\nnext\n");
});

Deno.test("OrderedWriter.rewrite() renders the snapshot once for every rewrite queued meanwhile", async () => {
  const files = new SlowFiles();
  let state = "a\n";
  let renders = 0;
  const writer = new OrderedWriter(files, "log.txt", {
    snapshot: () => {
      renders++;
      return state;
    },
  });
  const first = writer.rewrite();
  await settleMicrotasks();
  const burst: Promise<void>[] = [];
  for (const line of ["b\n", "c\n", "d\n"]) {
    state += line;
    burst.push(writer.rewrite());
  }
  // An append queued after the rewrites is in the state too, so the snapshot covers it.
  state += "e\n";
  burst.push(writer.append("e\n"));
  files.release();
  await first;
  await settleMicrotasks();
  assert.deepEqual(files.started, ["replace a\n", "replace a\nb\nc\nd\ne\n"]);
  assert.equal(renders, 2);
  files.release();
  await Promise.all(burst);
  assert.equal(files.inner.contents.get("log.txt"), "a\nb\nc\nd\ne\n");
});

Deno.test("OrderedWriter.rewrite() needs a snapshot", () => {
  assert.throws(() => new OrderedWriter(new MemoryFiles(), "log.txt").rewrite(), TypeError);
});

Deno.test({
  name: "DiskFiles: replace() keeps the file's mode, whatever the umask",
  ignore: !CAN_USE_DISK || Deno.build.os === "windows",
  async fn() {
    await using dir = await tempDir("toom_files_test_");
    for (const mode of [0o600, 0o640, 0o644, 0o666]) {
      const path = `${dir.path}/creds-${mode.toString(8)}.txt`;
      await Deno.writeTextFile(path, "old\n");
      await Deno.chmod(path, mode);
      await new DiskFiles().replace(path, "new\n", { newFileMode: 0o600 });
      assert.equal(await Deno.readTextFile(path), "new\n");
      assert.equal(Deno.statSync(path).mode! & 0o777, mode, mode.toString(8));
    }
  },
});

Deno.test({
  name: "DiskFiles: replace() gives a new file the mode asked for, or the default",
  ignore: !CAN_USE_DISK || Deno.build.os === "windows",
  async fn() {
    await using dir = await tempDir("toom_files_test_");
    await new DiskFiles().replace(`${dir.path}/secret.txt`, "x\n", { newFileMode: 0o600 });
    assert.equal(Deno.statSync(`${dir.path}/secret.txt`).mode! & 0o777, 0o600);
    await new DiskFiles().replace(`${dir.path}/plain.txt`, "x\n");
    await Deno.writeTextFile(`${dir.path}/reference.txt`, "x\n");
    assert.equal(
      Deno.statSync(`${dir.path}/plain.txt`).mode! & 0o777,
      Deno.statSync(`${dir.path}/reference.txt`).mode! & 0o777,
    );
  },
});

Deno.test({
  name: "DiskFiles.stamp() changes with every write, replace and hand edit, and an account store " +
    "rereads credentials only then",
  ignore: !CAN_USE_DISK,
  async fn() {
    await using dir = await tempDir("toom_files_test_");
    const path = `${dir.path}/credentials.txt`;
    const files = new DiskFiles();
    assert.equal(await files.stamp(path), undefined, "no file, no stamp");
    await Deno.writeTextFile(path, "yoda jedi\n");
    const reads: string[] = [];
    const counting: TextFiles = {
      read: (p) => (reads.push(p), files.read(p)),
      append: (p, text) => files.append(p, text),
      replace: (p, text, options) => files.replace(p, text, options),
      stamp: (p) => files.stamp(p),
    };
    const store = new AccountStore(counting, path, { logger: new MemoryLogger() });
    assert.ok(await store.find("yoda"));
    assert.ok(await store.find("yoda"));
    assert.equal(reads.length, 1, "unchanged: read once");
    const before = await files.stamp(path);
    // A hand edit of the same size, in place (same inode), a moment later.
    await new Promise((resolve) => setTimeout(resolve, 5));
    await Deno.writeTextFile(path, "hans jedi\n");
    assert.notEqual(await files.stamp(path), before);
    assert.equal(await store.find("yoda"), undefined);
    assert.ok(await store.find("hans"));
    assert.equal(reads.length, 2);
    await files.replace(path, "hans jedi\nluke usetheforce\n");
    assert.ok(await store.find("luke"));
    assert.equal(reads.length, 3);
  },
});
