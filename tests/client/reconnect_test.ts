/**
 * Reconnecting: whole clients whose in-memory connection to a real (in-memory) server is cut
 * after login, driven by a terminal the test types into. The schedule is in backoff_test.ts.
 */
import assert from "node:assert/strict";
import { runClient } from "../../lib/client/app.ts";
import { GIVE_UP } from "../../lib/client/reconnect.ts";
import type { StatusRender, Terminal } from "../../lib/client/terminal.ts";
import { FrameDecoder } from "../../lib/shared/framing.ts";
import { type Connection, memoryPair, TransportError } from "../../lib/shared/transport.ts";
import { ManualClock, settle } from "../../testing/p2p_fixture.ts";
import { startServer, type TestServer } from "../../testing/server_fixture.ts";

// --- whole clients ---

/** A terminal a test types into line by line; it records what is printed and each status. */
class TypedTerminal implements Terminal {
  readonly interactive = false;
  readonly output: string[] = [];
  /** Each status line set, as rendered at 80 columns; null when removed. */
  readonly statuses: Array<string | null> = [];
  readonly #lines: string[];
  #reader: ((line: string | null) => void) | undefined;
  #watchers: Array<() => void> = [];

  constructor(lines: string[]) {
    this.#lines = [...lines];
  }

  /** Types a line. */
  type(line: string): void {
    if (this.#reader) {
      this.#reader(line);
      this.#reader = undefined;
    } else {
      this.#lines.push(line);
    }
  }

  /** Resolves once a printed line contains `text` (a failsafe fails the test after 10 s). */
  async until(text: string): Promise<void> {
    const deadline = Date.now() + 10_000;
    while (!this.output.some((line) => line.includes(text))) {
      if (Date.now() > deadline) {
        throw new Error(`No "${text}" in:\n${this.output.join("\n")}`);
      }
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        this.#watchers.push(resolve);
        timer = setTimeout(resolve, 100);
      });
      clearTimeout(timer);
    }
  }

  readLine(prompt: string): Promise<string | null> {
    this.output.push(prompt);
    if (this.#lines.length > 0) return Promise.resolve(this.#lines.shift()!);
    return new Promise((resolve) => this.#reader = resolve);
  }

  readSecret(prompt: string): Promise<string | null> {
    return this.readLine(prompt);
  }

  print(line: string): void {
    this.output.push(line);
    const watchers = this.#watchers;
    this.#watchers = [];
    for (const wake of watchers) wake();
  }

  status(key: string, render: StatusRender | null): void {
    assert.equal(key, "connection");
    this.statuses.push(render ? render(80) : null);
  }

  close(): void {
    this.#reader?.(null);
    this.#reader = undefined;
  }
}

/** A server's in-memory dialler: each call opens a new connection to it and is counted. */
function dialler(test: TestServer) {
  const dial = {
    calls: 0,
    connect(): Promise<Connection> {
      dial.calls++;
      const [clientEnd, serverEnd] = memoryPair();
      void test.server.handle(serverEnd);
      return Promise.resolve(clientEnd);
    },
  };
  return dial;
}

/** Waits for a client to end; a failsafe fails the test after 10 s rather than let it hang. */
async function exitOf<T>(run: Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const failsafe = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error("The client did not end")), 10_000);
  });
  try {
    return await Promise.race([run, failsafe]);
  } finally {
    clearTimeout(timer);
  }
}

/** Fast retries in real time: a few milliseconds apart. */
const QUICK = { initialMs: 2, maxMs: 10, forMs: 5_000 };

Deno.test("a client whose connection is cut logs in again by itself and reads on", async () => {
  await using test = await startServer();
  const [clientEnd, serverEnd] = memoryPair();
  void test.server.handle(serverEnd);
  const dial = dialler(test);
  const terminal = new TypedTerminal(["yoda", "jedi", "MSG before"]);
  const run = runClient({
    conn: clientEnd,
    connect: dial.connect,
    reconnect: QUICK,
    terminal,
    udpPort: 9000,
  });
  await terminal.until("Message #1 posted");
  serverEnd.close();
  terminal.type("MSG typed while away");
  await terminal.until("Reconnected to the server as yoda.");
  await terminal.until("Message #2 posted");
  terminal.type("OUT");
  assert.equal(await exitOf(run), 0);

  const out = terminal.output;
  const lost = out.indexOf("Connection to server lost; reconnecting...");
  const back = out.indexOf("Reconnected to the server as yoda.");
  assert.ok(lost > 0 && back > lost, out.join("\n"));
  assert.ok(out.findIndex((line) => line.startsWith("Message #2 posted")) > back);
  assert.equal(out.at(-1), "Bye, yoda!");
  assert.equal(dial.calls, 1);
  assert.match(terminal.statuses[0]!, /^Connection lost; reconnecting in 1 s \(attempt 1\)…$/);
  assert.equal(terminal.statuses.at(-1), null);
  assert.deepEqual(
    test.file("messagelog.txt").trimEnd().split("\n").map((line) => line.split("; ")[3]),
    ["before", "typed while away"],
  );
});

Deno.test("a client logs in again with the UDP port it registered first", async () => {
  await using test = await startServer();
  const [clientEnd, serverEnd] = memoryPair();
  void test.server.handle(serverEnd);
  const dial = dialler(test);
  const terminal = new TypedTerminal(["yoda", "jedi"]);
  const run = runClient({
    conn: clientEnd,
    connect: dial.connect,
    reconnect: QUICK,
    terminal,
    udpPort: 9123,
  });
  await terminal.until("Welcome to TOOM!");
  serverEnd.close();
  await terminal.until("Reconnected to the server as yoda.");
  assert.match(test.file("userlog.txt"), /^1; .*; yoda; 127\.0\.0\.1; 9123\n$/);
  terminal.type("OUT");
  assert.equal(await exitOf(run), 0);
});

Deno.test("a password refused on logging in again ends the client with status 1", async () => {
  await using test = await startServer();
  const [clientEnd, serverEnd] = memoryPair();
  void test.server.handle(serverEnd);
  const dial = dialler(test);
  const terminal = new TypedTerminal(["yoda", "jedi"]);
  const run = runClient({
    conn: clientEnd,
    connect: dial.connect,
    reconnect: QUICK,
    terminal,
    udpPort: 9000,
  });
  await terminal.until("Welcome to TOOM!");
  test.files.contents.set("credentials.txt", "yoda changed\n");
  serverEnd.close();
  assert.equal(await exitOf(run), 1);
  assert.equal(
    terminal.output.at(-1),
    "Could not log in again as yoda: Invalid Password. Please try again",
  );
  assert.equal(dial.calls, 1, "a refused password is not tried again");
  assert.equal(terminal.statuses.at(-1), null);
});

Deno.test("a client that cannot reconnect gives up after 2 minutes with status 1", async () => {
  const clock = new ManualClock();
  await using test = await startServer();
  const [clientEnd, serverEnd] = memoryPair();
  void test.server.handle(serverEnd);
  let calls = 0;
  const terminal = new TypedTerminal(["yoda", "jedi"]);
  let exit: number | undefined;
  const run = runClient({
    conn: clientEnd,
    connect: () => {
      calls++;
      return Promise.reject(new Deno.errors.ConnectionRefused("Connection refused"));
    },
    clock,
    random: () => 0,
    terminal,
    udpPort: 9000,
  }).then((status) => exit = status);
  await terminal.until("Welcome to TOOM!");
  serverEnd.close();
  await settle();
  await clock.advance(119_999);
  assert.equal(exit, undefined, "still trying just before the deadline");
  // At 0.5, 1.5, 3.5, 7.5, 15.5 s, then every 10 s from 25.5 to 115.5 s: 15 attempts so far;
  // the last is cut short to come at the deadline.
  assert.equal(calls, 15);
  assert.match(terminal.statuses.at(-1)!, /^Connection lost; reconnecting in 5 s \(attempt 16\)…$/);
  await clock.advance(1);
  await exitOf(run);
  assert.equal(exit, 1);
  assert.equal(calls, 16);
  assert.equal(terminal.output.at(-1), GIVE_UP);
  assert.equal(terminal.statuses.at(-1), null);
});

Deno.test("logging out while reconnecting ends the client at once", async () => {
  const clock = new ManualClock();
  await using test = await startServer();
  const [clientEnd, serverEnd] = memoryPair();
  void test.server.handle(serverEnd);
  const terminal = new TypedTerminal(["yoda", "jedi"]);
  const run = runClient({
    conn: clientEnd,
    connect: () => Promise.reject(new Deno.errors.ConnectionRefused("Connection refused")),
    clock,
    terminal,
    udpPort: 9000,
  });
  await terminal.until("Welcome to TOOM!");
  serverEnd.close();
  await terminal.until("Connection to server lost; reconnecting...");
  terminal.type("OUT");
  assert.equal(await exitOf(run), 1);
  assert.equal(terminal.output.at(-1), "Connection to server lost");
  assert.equal(terminal.statuses.at(-1), null);
});

Deno.test("a server that cannot be trusted any more ends reconnecting, its message shown", async () => {
  const clock = new ManualClock();
  await using test = await startServer();
  const [clientEnd, serverEnd] = memoryPair();
  void test.server.handle(serverEnd);
  const terminal = new TypedTerminal(["yoda", "jedi"]);
  let calls = 0;
  const run = runClient({
    conn: clientEnd,
    connect: () => {
      calls++;
      return Promise.reject(new TransportError("The certificate changed.\nNothing was sent."));
    },
    reconnect: QUICK,
    clock,
    terminal,
    udpPort: 9000,
  });
  await terminal.until("Welcome to TOOM!");
  serverEnd.close();
  await terminal.until("Connection to server lost; reconnecting...");
  await clock.advance(QUICK.maxMs);
  assert.equal(await exitOf(run), 1);
  assert.equal(calls, 1, "not tried again");
  assert.deepEqual(terminal.output.slice(-2), ["The certificate changed.", "Nothing was sent."]);
});

Deno.test("a logout by the server ends the client with status 0, without reconnecting", async () => {
  await using test = await startServer({ inactivityMs: 60_000 });
  const [clientEnd, serverEnd] = memoryPair();
  void test.server.handle(serverEnd);
  const dial = dialler(test);
  const terminal = new TypedTerminal(["yoda", "jedi"]);
  const run = runClient({
    conn: clientEnd,
    connect: dial.connect,
    reconnect: QUICK,
    terminal,
    udpPort: 9000,
  });
  await terminal.until("Welcome to TOOM!");
  test.clock.advance(60_000);
  await test.server.sweep();
  assert.equal(await exitOf(run), 0);
  assert.ok(terminal.output.includes("You have been logged out due to inactivity"));
  assert.ok(!terminal.output.some((line) => line.includes("reconnecting")));
  assert.equal(dial.calls, 0);
});

Deno.test("a connection lost at the login prompts still ends the client with status 1", async () => {
  await using test = await startServer();
  const [clientEnd, serverEnd] = memoryPair();
  void test.server.handle(serverEnd);
  const dial = dialler(test);
  const terminal = new TypedTerminal(["yoda"]);
  const run = runClient({
    conn: clientEnd,
    connect: dial.connect,
    reconnect: QUICK,
    terminal,
    udpPort: 9000,
  });
  await settle();
  serverEnd.close();
  assert.equal(await exitOf(run), 1);
  assert.equal(terminal.output.at(-1), "Connection to server lost");
  assert.equal(dial.calls, 0);
});

Deno.test("with reconnecting off, a lost connection ends the client as before", async () => {
  await using test = await startServer();
  const [clientEnd, serverEnd] = memoryPair();
  void test.server.handle(serverEnd);
  const dial = dialler(test);
  const terminal = new TypedTerminal(["yoda", "jedi"]);
  const run = runClient({
    conn: clientEnd,
    connect: dial.connect,
    reconnect: { forMs: 0 },
    terminal,
    udpPort: 9000,
  });
  await terminal.until("Welcome to TOOM!");
  serverEnd.close();
  assert.equal(await exitOf(run), 1);
  assert.equal(terminal.output.at(-1), "Connection to server lost");
  assert.equal(dial.calls, 0);
});

Deno.test("a server shutting down cleanly is reconnected to once it is back", async () => {
  await using first = await startServer();
  await using second = await startServer();
  const [clientEnd, serverEnd] = memoryPair();
  void first.server.handle(serverEnd);
  const dial = dialler(second);
  const terminal = new TypedTerminal(["yoda", "jedi"]);
  const run = runClient({
    conn: clientEnd,
    connect: dial.connect,
    reconnect: QUICK,
    terminal,
    udpPort: 9000,
  });
  await terminal.until("Welcome to TOOM!");
  await first.server.close();
  await terminal.until("Reconnected to the server as yoda.");
  assert.ok(terminal.output.includes("Server is shutting down"));
  terminal.type("ATU");
  await terminal.until("No other active user.");
  terminal.type("OUT");
  assert.equal(await exitOf(run), 0);
});

/** Connects a client to `test` through a relay whose client side can be cut on its own. */
function relayed(test: TestServer) {
  const [clientEnd, nearEnd] = memoryPair();
  const [farEnd, serverEnd] = memoryPair();
  void test.server.handle(serverEnd);
  const keepOpen = { preventClose: true, preventAbort: true, preventCancel: true };
  void nearEnd.readable.pipeTo(farEnd.writable, keepOpen).catch(() => {});
  void farEnd.readable.pipeTo(nearEnd.writable, keepOpen).catch(() => {});
  return {
    clientEnd,
    /** The client sees its connection end; the server does not (yet). */
    cutClientSide: () => clientEnd.close(),
    /** The server sees its connection end. */
    cutServerSide: () => serverEnd.close(),
  };
}

Deno.test("'already logged in' is retried until the server lets the old session go", async () => {
  await using test = await startServer();
  const relay = relayed(test);
  const dial = dialler(test);
  const terminal = new TypedTerminal(["yoda", "jedi"]);
  let exit: number | undefined;
  const run = runClient({
    conn: relay.clientEnd,
    connect: dial.connect,
    reconnect: QUICK,
    terminal,
    udpPort: 9000,
  }).then((status) => exit = status);
  await terminal.until("Welcome to TOOM!");
  relay.cutClientSide();
  while (dial.calls < 3) {
    assert.equal(exit, undefined, `ended early:\n${terminal.output.join("\n")}`);
    await settle();
  }
  assert.ok(!terminal.output.includes("Reconnected to the server as yoda."));
  relay.cutServerSide();
  await terminal.until("Reconnected to the server as yoda.");
  terminal.type("OUT");
  assert.equal(await exitOf(run), 0);
  assert.ok(!terminal.output.some((line) => line.startsWith("Could not log in again")));
});

/**
 * A fake server: it answers `hello` and `user`, answers `pass` with `passReply`, and hangs up after
 * a refused password or on the first command (without answering it).
 */
async function fakeServer(
  conn: Connection,
  passReply: { ok: boolean; lines: string[]; code?: string },
): Promise<void> {
  const writer = conn.writable.getWriter();
  const send = (frame: object) =>
    writer.write(new TextEncoder().encode(JSON.stringify(frame) + "\n"));
  const decoder = new FrameDecoder();
  const reader = conn.readable.getReader();
  try {
    while (true) {
      const { value, done } = await reader.read();
      if (done) return;
      for (const text of decoder.push(value)) {
        const frame = JSON.parse(text);
        if (frame.t === "hello") await send({ t: "hello", v: 1, server: "fake" });
        if (frame.t === "user") await send({ t: "reply", id: frame.id, ok: true, lines: [] });
        if (frame.t === "pass") {
          await send({ t: "reply", id: frame.id, ...passReply });
          if (!passReply.ok) return conn.close();
        }
        if (frame.t === "cmd") return conn.close();
      }
    }
  } catch {
    // Closed under it.
  } finally {
    reader.releaseLock();
    writer.releaseLock();
  }
}

/** A server that lets anyone in, then hangs up on the first command without answering it. */
function hangUpOnFirstCommand(conn: Connection): Promise<void> {
  return fakeServer(conn, { ok: true, lines: ["Welcome to TOOM!"] });
}

/** A server whose store is away: it refuses every password with `unavailable` and hangs up. */
function unavailable(conn: Connection): Promise<void> {
  const lines = ["Service unavailable, try again"];
  return fakeServer(conn, { ok: false, code: "unavailable", lines });
}

Deno.test("'Service unavailable' (a cluster's database away) is retried, not the end", async () => {
  await using test = await startServer();
  const relay = relayed(test);
  const real = dialler(test);
  let refusals = 0;
  const dial = {
    connect(): Promise<Connection> {
      if (refusals >= 2) return real.connect();
      refusals++;
      const [clientEnd, serverEnd] = memoryPair();
      void unavailable(serverEnd);
      return Promise.resolve(clientEnd);
    },
  };
  const terminal = new TypedTerminal(["yoda", "jedi"]);
  const run = runClient({
    conn: relay.clientEnd,
    connect: dial.connect,
    reconnect: QUICK,
    terminal,
    udpPort: 9000,
  });
  await terminal.until("Welcome to TOOM!");
  relay.cutClientSide();
  relay.cutServerSide();
  await terminal.until("Reconnected to the server as yoda.");
  assert.equal(refusals, 2);
  terminal.type("OUT");
  assert.equal(await exitOf(run), 0);
  assert.ok(!terminal.output.some((line) => line.startsWith("Could not log in again")));
});

Deno.test("a command in flight when the link dies is reported, not sent again", async () => {
  await using test = await startServer();
  const [clientEnd, serverEnd] = memoryPair();
  const fake = hangUpOnFirstCommand(serverEnd);
  const dial = dialler(test);
  const terminal = new TypedTerminal(["yoda", "jedi", "MSG are you there"]);
  const run = runClient({
    conn: clientEnd,
    connect: dial.connect,
    reconnect: QUICK,
    terminal,
    udpPort: 9000,
  });
  await terminal.until(
    'The connection was lost before the server answered "MSG are you there"; ' +
      "it may or may not have been carried out.",
  );
  await terminal.until("Reconnected to the server as yoda.");
  terminal.type("OUT");
  assert.equal(await exitOf(run), 0);
  await fake;
  assert.equal(test.file("messagelog.txt"), "", "the MSG was not sent again");
});

Deno.test("a password changed with passwd is the one used to log in again", async () => {
  await using test = await startServer();
  const [clientEnd, serverEnd] = memoryPair();
  void test.server.handle(serverEnd);
  const dial = dialler(test);
  const terminal = new TypedTerminal(["yoda", "jedi", "passwd", "jedi", "master", "master"]);
  const run = runClient({
    conn: clientEnd,
    connect: dial.connect,
    reconnect: QUICK,
    terminal,
    udpPort: 9000,
  });
  await terminal.until("Password changed.");
  serverEnd.close();
  await terminal.until("Reconnected to the server as yoda.");
  terminal.type("OUT");
  assert.equal(await exitOf(run), 0);
});
