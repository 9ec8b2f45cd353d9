/**
 * End-to-end, the built chat-server as an operator runs it: under a low open-file limit, with a
 * credentials file others can read, and `--hash-credentials`; the file keeps its mode through
 * registrations and password changes. The server speaks plain TCP here (`--no-tls`): what is
 * tested is the same over TLS.
 */
import assert from "node:assert/strict";
import {
  CAN_RUN_PROGRAMS,
  CLIENT_BIN,
  ensureBuilt,
  Program,
  programTests,
  SERVER_BIN,
} from "../testing/programs.ts";
import { TestClient } from "../testing/server_fixture.ts";
import { tempDir } from "../testing/temp_dir.ts";
import { tcpConnection } from "../lib/shared/transport.ts";

const CREDENTIALS = "yoda jedi\nvader sithlord\nhans falcon\nobiwan hellothere\n";
const HAS_PRLIMIT = CAN_RUN_PROGRAMS &&
  await new Deno.Command("prlimit", { args: ["--version"], stdout: "null", stderr: "null" })
    .output().then((result) => result.success, () => false);
const e2e = programTests("server security end-to-end tests");

/** Starts ./chat-server in `dir` (optionally under an open-file limit); resolves once it listens. */
async function startServer(
  dir: string,
  args: string[],
  options: { openFiles?: number } = {},
): Promise<{ program: Program; port: number }> {
  await ensureBuilt();
  const command = options.openFiles === undefined
    ? { path: SERVER_BIN, args }
    : { path: "prlimit", args: [`--nofile=${options.openFiles}`, SERVER_BIN, ...args] };
  const program = new Program(command.path, command.args, { cwd: dir });
  try {
    const at = await program.waitFor(/listening on port (\d+) /);
    return {
      program,
      port: Number(/listening on port (\d+) /.exec(program.stdout.slice(0, at))![1]),
    };
  } catch (error) {
    await program[Symbol.asyncDispose]();
    throw error;
  }
}

/** A scripted client over plain TCP; close it when done. */
async function tcpClient(port: number): Promise<TestClient> {
  return new TestClient(tcpConnection(await Deno.connect({ hostname: "127.0.0.1", port })));
}

/** Logs in with the real chat-client, as a person would, and logs out. */
async function clientLogsIn(dir: string, port: number, user: string, password: string) {
  await using client = new Program(CLIENT_BIN, ["127.0.0.1", String(port), "0", "--no-tls"], {
    cwd: dir,
  });
  await client.waitFor("Username: \n");
  await client.type(user);
  await client.waitFor("Password: \n");
  await client.type(password);
  await client.waitFor("Welcome to TOOM!");
  await client.type("OUT");
  assert.equal(await client.exit(), 0);
}

function modeOf(path: string): number {
  return Deno.statSync(path).mode! & 0o777;
}

Deno.test({
  name:
    "under a 64-descriptor limit the server derives its connection limit, survives 100 and lets a user in",
  ...e2e,
  ignore: !HAS_PRLIMIT,
  async fn() {
    await using dir = await tempDir("toom-e2e-fd-");
    await Deno.writeTextFile(`${dir.path}/credentials.txt`, CREDENTIALS, { mode: 0o600 });
    const { program, port } = await startServer(dir.path, ["0", "3", "--no-tls"], {
      openFiles: 64,
    });
    await using _server = program;
    // Some of the 64 descriptors are the runtime's own; the rest, less a reserve, are for users.
    const at = await program.waitFor(
      /Accepting up to (\d+) connections \((\d+) file descriptors free\)/,
    );
    const [, max, free] = /Accepting up to (\d+) connections \((\d+) file descriptors free\)/
      .exec(program.stdout.slice(0, at))!.map(Number);
    assert.ok(free! > 16 && free! < 64 && max === free! - Math.floor(free! / 2), `${max}/${free}`);
    const idle: Deno.Conn[] = [];
    try {
      // More connections than descriptors: each new one pushes out the oldest idle one.
      for (let i = 0; i < 100; i++) {
        idle.push(await Deno.connect({ hostname: "127.0.0.1", port }));
      }
      const clientDir = `${dir.path}/client`;
      await Deno.mkdir(clientDir);
      await clientLogsIn(clientDir, port, "yoda", "jedi");
    } finally {
      for (const conn of idle) conn.close();
    }
    program.kill("SIGINT");
    assert.equal(await program.exit(), 0, program.stderr);
    assert.match(program.stderr, /connections open \(--max-connections\)/);
  },
});

Deno.test({
  name: "chat-server --hash-credentials hashes clear passwords in place, and logins still work",
  ...e2e,
  async fn() {
    await using dir = await tempDir("toom-e2e-hash-");
    const path = `${dir.path}/credentials.txt`;
    await Deno.writeTextFile(path, "# the team\r\n" + CREDENTIALS.replaceAll("\n", "\r\n"));
    await Deno.chmod(path, 0o640);
    await ensureBuilt();
    {
      await using hasher = new Program(SERVER_BIN, ["--hash-credentials"], { cwd: dir.path });
      assert.equal(await hasher.exit(), 0, hasher.stderr);
      assert.equal(hasher.stdout, "Hashed 4 clear-text password(s) in credentials.txt\n");
    }
    const text = await Deno.readTextFile(path);
    const lines = text.split("\r\n");
    assert.equal(lines[0], "# the team");
    assert.deepEqual(lines.slice(1, 5).map((line) => line.split(" ")[0]), [
      "yoda",
      "vader",
      "hans",
      "obiwan",
    ]);
    assert.ok(lines.slice(1, 5).every((line) => /^\S+ scrypt\$16384\$8\$1\$/.test(line)), text);
    assert.equal(modeOf(path), 0o640);
    {
      await using again = new Program(SERVER_BIN, ["--credentials", path, "--hash-credentials"], {
        cwd: dir.path,
      });
      assert.equal(await again.exit(), 0);
      assert.equal(again.stdout, `Hashed 0 clear-text password(s) in ${path}\n`);
    }
    {
      await using missing = new Program(
        SERVER_BIN,
        ["--hash-credentials", "--credentials", "nope.txt"],
        { cwd: dir.path },
      );
      assert.equal(await missing.exit(), 1);
      assert.match(missing.stderr, /Could not hash the passwords in nope\.txt/);
    }
    const { program, port } = await startServer(dir.path, ["0", "3", "--no-tls"]);
    await using _server = program;
    const clientDir = `${dir.path}/client`;
    await Deno.mkdir(clientDir);
    await clientLogsIn(clientDir, port, "vader", "sithlord");
    assert.ok(!program.stderr.includes("Warning:"), program.stderr);
  },
});

Deno.test({
  name: "chat-server warns at start about clear passwords that others can read",
  ...e2e,
  async fn() {
    await using dir = await tempDir("toom-e2e-warn-");
    const path = `${dir.path}/credentials.txt`;
    await Deno.writeTextFile(path, CREDENTIALS);
    await Deno.chmod(path, 0o644);
    {
      const { program } = await startServer(dir.path, ["0", "3", "--no-tls"]);
      await using _server = program;
      program.kill("SIGINT");
      await program.exit();
      assert.match(
        program.stderr,
        /Warning: credentials\.txt is readable by group and others \(mode 0644\) and holds 4 clear-text password\(s\)\. Protect it with "chmod 600 credentials\.txt" and hash them with "chat-server --hash-credentials"\./,
      );
    }
    await Deno.chmod(path, 0o600);
    const { program } = await startServer(dir.path, ["0", "3", "--no-tls"]);
    await using _server = program;
    program.kill("SIGINT");
    await program.exit();
    assert.ok(!program.stderr.includes("Warning:"), program.stderr);
  },
});

Deno.test({
  name: "credentials.txt keeps its mode through registrations and password changes",
  ...e2e,
  async fn() {
    await using dir = await tempDir("toom-e2e-mode-");
    const path = `${dir.path}/credentials.txt`;
    await Deno.writeTextFile(path, CREDENTIALS);
    for (const mode of [0o600, 0o640]) {
      await Deno.chmod(path, mode);
      const { program, port } = await startServer(dir.path, [
        "0",
        "3",
        "--no-tls",
        "--allow-register",
      ]);
      await using _server = program;
      using newbie = await tcpClient(port);
      await newbie.hello();
      await newbie.link.request({ t: "user", name: `newbie${mode.toString(8)}` });
      assert.equal((await newbie.link.request({ t: "pass", password: "pw", udpPort: 1 })).ok, true);
      assert.equal(modeOf(path), mode, "after a registration");
      using yoda = await tcpClient(port);
      assert.equal((await yoda.login("yoda", "jedi")).ok, true);
      const changed = await yoda.link.request({ t: "passwd", old: "jedi", new: "jedi" });
      assert.deepEqual(changed.lines, ["Password changed."]);
      assert.equal(modeOf(path), mode, "after passwd");
    }
    // A credentials file the server creates (by a registration) is the owner's alone.
    await Deno.remove(path);
    const { program, port } = await startServer(dir.path, [
      "0",
      "3",
      "--no-tls",
      "--allow-register",
    ]);
    await using _server = program;
    using first = await tcpClient(port);
    await first.hello();
    await first.link.request({ t: "user", name: "first" });
    assert.equal((await first.link.request({ t: "pass", password: "pw", udpPort: 1 })).ok, true);
    assert.equal(modeOf(path), 0o600);
  },
});
