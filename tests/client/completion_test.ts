/** Tab completion: command words, usernames seen, and file names for UPD. */
import assert from "node:assert/strict";
import { complete, type FileLister, KnownUsers } from "../../lib/client/completion.ts";

/** A file system of a home directory and a working directory. */
const FILES: FileLister = {
  list(dir) {
    const tree: Record<string, Array<{ name: string; isDirectory: boolean }>> = {
      ".": [
        { name: "notes.txt", isDirectory: false },
        { name: "notes old.txt", isDirectory: false },
        { name: "movies", isDirectory: true },
        { name: ".hidden", isDirectory: false },
      ],
      "/home/yoda/": [{ name: "report.pdf", isDirectory: false }],
      "movies/": [{ name: "a new hope.mkv", isDirectory: false }],
    };
    return Promise.resolve(tree[dir] ?? []);
  },
  home: () => "/home/yoda",
};

function users(...names: string[]): KnownUsers {
  const known = new KnownUsers();
  known.self = "yoda";
  for (const name of names) known.add(name);
  return known;
}

Deno.test("complete() offers command words and aliases, case-insensitively", async () => {
  assert.deepEqual(await complete("ms", 2, users()), { from: 0, candidates: ["MSG"] });
  assert.deepEqual((await complete("who", 3, users())).candidates, ["whoelse", "whoelsesince"]);
  assert.deepEqual((await complete("st", 2, users())).candidates, ["startprivate", "stopprivate"]);
  assert.equal((await complete("", 0, users())).candidates.length > 15, true);
});

Deno.test("complete() offers the users seen where a command takes a username", async () => {
  const known = users("vader", "hans", "obiwan", "han");
  assert.deepEqual(await complete("message ha", 10, known), {
    from: 8,
    candidates: ["han", "hans"],
  });
  assert.deepEqual((await complete("UPD ", 4, known)).candidates, [
    "han",
    "hans",
    "obiwan",
    "vader",
  ]);
  assert.deepEqual((await complete("MSG ha", 6, known)).candidates, []);
});

Deno.test("KnownUsers learns names from events and from whoelse and ATU replies, never oneself", () => {
  const known = new KnownUsers();
  known.self = "yoda";
  known.seeEvent({
    t: "event",
    kind: "presence",
    lines: ["hans logged in"],
    data: { user: "hans", what: "logged in" },
  });
  known.seeEvent({ t: "event", kind: "message", lines: ["vader: hi"], data: { from: "vader" } });
  known.seeReply("whoelse", ["obiwan", "yoda"]);
  known.seeReply("ATU", ["leia, 127.0.0.1, 8000, active since 23 Feb 2021 15:00:00."]);
  known.seeReply("whoelse", ["No other user is online."]);
  known.add("bad name");
  assert.deepEqual(known.names.sort(), ["hans", "leia", "obiwan", "vader"]);
});

Deno.test("complete() offers file names after UPD <user>, escaping spaces and marking directories", async () => {
  const known = users("hans");
  assert.deepEqual(await complete("UPD hans no", 11, known, FILES), {
    from: 9,
    candidates: ["notes.txt", "notes\\ old.txt"],
  });
  assert.deepEqual((await complete("UPD hans m", 10, known, FILES)).candidates, ["movies/"]);
  assert.deepEqual((await complete("UPD hans movies/a", 17, known, FILES)).candidates, [
    "movies/a\\ new\\ hope.mkv",
  ]);
  assert.deepEqual((await complete("UPD hans ", 9, known, FILES)).candidates, [
    "movies/",
    "notes.txt",
    "notes\\ old.txt",
  ]);
  assert.deepEqual((await complete("UPD hans .h", 11, known, FILES)).candidates, [".hidden"]);
});

Deno.test("complete() reads a quoted partial name and expands ~ for listing, keeping it as typed", async () => {
  const known = users("hans");
  assert.deepEqual((await complete('UPD hans "notes o', 17, known, FILES)).candidates, [
    "notes\\ old.txt",
  ]);
  assert.deepEqual(await complete("UPD hans ~/re", 13, known, FILES), {
    from: 9,
    candidates: ["~/report.pdf"],
  });
});

Deno.test("complete() completes the word at the cursor, not the end of the line", async () => {
  assert.deepEqual(await complete("bro hello", 3, users()), { from: 0, candidates: ["broadcast"] });
});
