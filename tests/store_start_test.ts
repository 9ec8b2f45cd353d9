/**
 * End-to-end, how the built chat-server starts on its data: it refuses a toom.db it cannot use
 * (text, a damaged page, a newer layout, another program's database), says why and leaves the
 * file alone; and `--data-dir` keeps toom.db and both logs in a directory it makes. Plain TCP
 * (`--no-tls`) on 127.0.0.1: what is tested is the same over TLS.
 */
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import {
  ensureBuilt,
  failsafe,
  Program,
  programTests,
  SERVER_BIN,
  startServerProgram,
} from "../testing/programs.ts";
import { CREDENTIALS, loggedIn, SERVER_ARGS } from "../testing/raw_client.ts";
import { tempDir } from "../testing/temp_dir.ts";

const e2e = programTests("store start-up end-to-end tests");

/** Runs ./chat-server in `dir` with `args` until it exits (the failsafe kills it at 15 s). */
async function serverRun(dir: string, args: string[]): Promise<Program & { code: number }> {
  await ensureBuilt();
  const program = new Program(SERVER_BIN, ["0", ...SERVER_ARGS, ...args], { cwd: dir });
  return Object.assign(program, { code: await program.exit() });
}

/** Makes a toom.db as the server makes it (a start and a clean stop) in `dir`. */
async function realDatabase(dir: string): Promise<void> {
  await using server = await startServerProgram(CREDENTIALS, [...SERVER_ARGS, "--keep-board"]);
  server.program.kill("SIGINT");
  assert.equal(await server.program.exit(), 0, server.program.stderr);
  await Deno.copyFile(`${server.dir}/toom.db`, `${dir}/toom.db`);
}

/** The ways a toom.db can be unusable, each made in `dir`, and what the server must say. */
const UNUSABLE: Array<{ what: string; make: (dir: string) => Promise<void>; says: RegExp }> = [
  {
    what: "a file of text",
    make: (dir) =>
      Deno.writeTextFile(
        `${dir}/toom.db`,
        "These are not the droids you are looking for.\n".repeat(99),
      ),
    says: /^toom\.db is damaged or is not a database \(.+\); move it away/m,
  },
  {
    what: "a database with a page overwritten",
    async make(dir) {
      await realDatabase(dir);
      // Enough board rows for several pages, one of which is then overwritten with garbage.
      const db = new DatabaseSync(`${dir}/toom.db`);
      const insert = db.prepare(
        "INSERT INTO board (id, author, text, time, edited) VALUES (?, 'yoda', ?, ?, 0)",
      );
      db.exec("BEGIN");
      for (let id = 1; id <= 400; id++) insert.run(id, `${"x".repeat(200)} ${id}`, id * 1000);
      db.exec("COMMIT");
      db.exec("PRAGMA wal_checkpoint(TRUNCATE)");
      db.close();
      const bytes = await Deno.readFile(`${dir}/toom.db`);
      assert.ok(bytes.length > 8 * 4096, `toom.db has ${bytes.length} bytes`);
      bytes.fill(0xa5, 5 * 4096, 6 * 4096);
      await Deno.writeFile(`${dir}/toom.db`, bytes);
    },
    says: /^toom\.db is damaged or is not a database \(.*malformed.*\); move it away/m,
  },
  {
    what: "a database from a newer chat-server",
    make(dir) {
      const db = new DatabaseSync(`${dir}/toom.db`);
      db.exec("PRAGMA application_id = 1414483789"); // 0x544f4f4d, 'TOOM'
      db.exec("PRAGMA user_version = 99");
      db.close();
      return Promise.resolve();
    },
    says:
      /^toom\.db was written by a newer chat-server \(layout version 99; this one knows up to \d+\)/m,
  },
  {
    what: "another program's database",
    make(dir) {
      const db = new DatabaseSync(`${dir}/toom.db`);
      db.exec("PRAGMA application_id = 42");
      db.exec("CREATE TABLE songs (title TEXT)");
      db.close();
      return Promise.resolve();
    },
    says: /^toom\.db is not a TOOM database; move it away or use --data-dir/m,
  },
];

Deno.test({
  name: "chat-server refuses to start on a toom.db it cannot use, says why, and leaves it alone",
  ...e2e,
  fn: () =>
    failsafe(60_000, async () => {
      for (const { what, make, says } of UNUSABLE) {
        await using dir = await tempDir("toom-e2e-baddb-");
        await Deno.writeTextFile(`${dir.path}/credentials.txt`, CREDENTIALS, { mode: 0o600 });
        await make(dir.path);
        const before = await Deno.readFile(`${dir.path}/toom.db`);
        const server = await serverRun(dir.path, ["--keep-board"]);
        assert.equal(server.code, 1, `${what}: ${server.stderr}`);
        assert.match(server.stderr, says, what);
        assert.ok(!server.stdout.includes("listening"), `${what}: ${server.stdout}`);
        assert.deepEqual(await Deno.readFile(`${dir.path}/toom.db`), before, `${what} was changed`);
      }
    }),
});

Deno.test({
  name: "chat-server --data-dir makes the directory and keeps toom.db and both logs in it",
  ...e2e,
  fn: () =>
    failsafe(30_000, async () => {
      await ensureBuilt();
      await using dir = await tempDir("toom-e2e-datadir-");
      // A relative --credentials still means the file in the directory the server started in.
      await Deno.writeTextFile(`${dir.path}/accounts.txt`, CREDENTIALS, { mode: 0o600 });
      const dataDir = `${dir.path}/state/server`;
      await using program = new Program(
        SERVER_BIN,
        ["0", ...SERVER_ARGS, "--data-dir", "state/server", "--credentials", "accounts.txt"],
        { cwd: dir.path },
      );
      const at = await program.waitFor(/listening on port (\d+) /);
      const port = Number(/listening on port (\d+) /.exec(program.stdout.slice(0, at))![1]);
      assert.equal((await Deno.stat(dataDir)).mode! & 0o777, 0o700);
      {
        using yoda = await loggedIn(port, "yoda");
        const posted = await yoda.cmd("MSG kept in the data directory");
        assert.ok(posted.ok, posted.lines.join(" "));
        assert.match(await Deno.readTextFile(`${dataDir}/userlog.txt`), /^1; .+; yoda; /);
        assert.match(
          await Deno.readTextFile(`${dataDir}/messagelog.txt`),
          /^1; .+; yoda; kept in the data directory; no\n$/,
        );
        await yoda.logOut();
      }
      program.kill("SIGINT");
      assert.equal(await program.exit(), 0, program.stderr);
      const names = async (path: string) =>
        (await Array.fromAsync(Deno.readDir(path))).map((entry) => entry.name).sort();
      assert.deepEqual(await names(dir.path), ["accounts.txt", "state"]);
      const kept = await names(dataDir);
      for (const name of ["messagelog.txt", "toom.db", "userlog.txt"]) {
        assert.ok(kept.includes(name), `${name} in ${kept.join(", ")}`);
      }
      // A real store: it holds what the server wrote down (yoda's last-seen time).
      const db = new DatabaseSync(`${dataDir}/toom.db`, { readOnly: true });
      try {
        assert.deepEqual(
          db.prepare("SELECT user FROM seen").all().map((row) => row.user),
          ["yoda"],
        );
      } finally {
        db.close();
      }
    }),
});

Deno.test({
  name: "a second chat-server on the same toom.db refuses to start while the first runs",
  ...e2e,
  fn: () =>
    failsafe(30_000, async () => {
      await using first = await startServerProgram(CREDENTIALS, SERVER_ARGS);
      const second = await serverRun(first.dir, []);
      assert.equal(second.code, 1, second.stderr);
      assert.match(
        second.stderr,
        /^toom\.db is in use by another chat-server; stop it, or give this one another --data-dir$/m,
      );
      assert.ok(!second.stdout.includes("listening"), second.stdout);
      // The first one is untouched and still serves.
      using yoda = await loggedIn(first.port, "yoda");
      assert.ok((await yoda.cmd("whoelse")).ok);
      await yoda.logOut();
    }),
});
