/**
 * The roster at scale (lib/server/roster.ts through the server): logouts in a burst and a stop
 * write userlog.txt once, a stop tells no one of the others leaving, and a reply waits for its
 * userlog write.
 */
import assert from "node:assert/strict";
import { MemoryFiles, type ReplaceOptions } from "../../lib/server/files.ts";
import type { ServerEvent } from "../../lib/shared/protocol.ts";
import { type Address, type Connection, memoryPair, writeAll } from "../../lib/shared/transport.ts";
import { loggedIn, settle, startServer, TestClient } from "../../testing/server_fixture.ts";

const USERLOG = "userlog.txt";

/** Memory files that count the userlog's writes and can hold them until the test releases them. */
class CountingFiles extends MemoryFiles {
  /** Texts of every userlog rewrite started, oldest first. */
  readonly rewrites: string[] = [];
  /** Whether userlog rewrites wait for `release()`. */
  hold = false;
  readonly #held: (() => void)[] = [];

  constructor(accounts: number) {
    super();
    const lines = Array.from({ length: accounts }, (_, i) => `u${i} p${i}\n`);
    this.contents.set("credentials.txt", lines.join(""));
  }

  override replace(path: string, text: string, _options?: ReplaceOptions): Promise<void> {
    if (path !== USERLOG) return super.replace(path, text);
    this.rewrites.push(text);
    if (!this.hold) return super.replace(path, text);
    return new Promise<void>((resolve) => this.#held.push(resolve))
      .then(() => super.replace(path, text));
  }

  /** Lets every held write finish. */
  release(): void {
    for (const resolve of this.#held.splice(0)) resolve();
  }

  get held(): number {
    return this.#held.length;
  }
}

async function crowd(accounts: number) {
  const files = new CountingFiles(accounts);
  const test = await startServer({ files });
  const clients: TestClient[] = [];
  for (let i = 0; i < accounts; i++) clients.push(await loggedIn(test, `u${i}`, `p${i}`));
  await settle();
  for (const client of clients) client.events.length = 0;
  files.rewrites.length = 0;
  return { test, files, clients };
}

Deno.test("a stop logs everyone out in one userlog write and tells no one of the others", async () => {
  const { test, files, clients } = await crowd(40);
  await using _ = test;
  test.logger.lines.length = 0;
  await test.server.close();
  await Promise.all(clients.map((client) => client.link.closed));
  assert.deepEqual(files.rewrites, [""]);
  assert.equal(test.file(USERLOG), "");
  assert.equal(test.server.state.roster.online.size, 0);
  assert.deepEqual(
    test.logger.lines,
    clients.map((_, i) => `u${i} logged out (server shutdown)`),
  );
  for (const client of clients) {
    assert.deepEqual(client.eventLines, ["Server is shutting down"]);
  }
});

/**
 * The server's end of a connection whose peer stops reading once `stuck` is set: writes then
 * never finish, as on a socket whose buffers are full, until the connection is closed.
 */
class StuckConnection implements Connection {
  stuck = false;
  readonly #inner: Connection;
  readonly #closed: Promise<never>;
  #close!: () => void;

  constructor(inner: Connection) {
    this.#inner = inner;
    this.#closed = new Promise<never>((_, reject) => {
      this.#close = () => reject(new Deno.errors.BadResource("Connection closed"));
    });
    this.#closed.catch(() => {});
  }

  get remoteAddr(): Address {
    return this.#inner.remoteAddr;
  }

  get readable(): ReadableStream<Uint8Array> {
    return this.#inner.readable;
  }

  get writable(): WritableStream<Uint8Array> {
    return new WritableStream({ write: (chunk) => writeAll(this, chunk) });
  }

  read(buffer: Uint8Array): Promise<number | null> {
    return this.#inner.read(buffer);
  }

  write(bytes: Uint8Array): Promise<number> {
    return this.stuck ? this.#closed : this.#inner.write(bytes);
  }

  close(): void {
    this.#close();
    this.#inner.close();
  }
}

Deno.test("a stop closes a session whose peer reads nothing after a short grace", async () => {
  const files = new CountingFiles(2);
  const test = await startServer({ files, closeGraceMs: 50 });
  await using _ = test;
  const reader = await loggedIn(test, "u0", "p0");
  const [clientEnd, serverEnd] = memoryPair();
  const stuck = new StuckConnection(serverEnd);
  const running = test.server.handle(stuck);
  using silent = new TestClient(clientEnd);
  assert.equal((await silent.login("u1", "p1")).ok, true);
  await reader.waitFor("u1 logged in");
  reader.events.length = 0;
  stuck.stuck = true;
  await test.server.close();
  await running;
  await reader.link.closed;
  assert.deepEqual(reader.eventLines, ["Server is shutting down"]);
  assert.equal(test.file(USERLOG), "");
  assert.equal(test.server.connectionCount, 0);
});

Deno.test("logouts while the userlog is being written go out as one more write", async () => {
  const { test, files, clients } = await crowd(20);
  await using _ = test;
  files.hold = true;
  const [first, ...rest] = clients;
  let answered = false;
  const out = first!.cmd("OUT").then((reply) => {
    answered = true;
    return reply;
  });
  while (files.held === 0) await settle();
  // The others lose their connections while the first rewrite is held.
  for (const client of rest) client.close();
  await settle();
  // OUT is answered only after its userlog write has landed.
  assert.equal(answered, false);
  assert.equal(files.rewrites.length, 1);
  files.release();
  assert.deepEqual((await out).lines, ["Bye, u0!"]);
  while (test.server.state.roster.online.size > 0 || files.held > 0) {
    files.release();
    await settle();
  }
  files.hold = false;
  assert.equal(files.rewrites.length, 2);
  assert.equal(files.rewrites[1], "");
  assert.equal(test.file(USERLOG), "");
});

Deno.test("a logout tells every other user with one shared event object", async () => {
  const { test, clients } = await crowd(5);
  await using _ = test;
  const { roster } = test.server.state;
  const told: { to: string; event: ServerEvent }[] = [];
  const leaving = roster.get("u4")!;
  await roster.leave(leaving, "out", (to, event) => told.push({ to, event }));
  leaving.end();
  assert.deepEqual(told.map((t) => t.to), ["u0", "u1", "u2", "u3"]);
  assert.equal(new Set(told.map((t) => t.event)).size, 1);
  assert.deepEqual(told[0]!.event, {
    kind: "presence",
    lines: ["u4 logged out"],
    data: { user: "u4", what: "logged out" },
  });
  await clients[4]!.link.closed;
  assert.equal(test.file(USERLOG).split("\n").length - 1, 4);
});
