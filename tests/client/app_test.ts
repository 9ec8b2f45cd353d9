/**
 * The client's conversation with its user, driven by a scripted terminal, against the real
 * server or a fake one that sends whatever a test wants.
 */
import assert from "node:assert/strict";
import { runClient } from "../../lib/client/app.ts";
import type { Terminal } from "../../lib/client/terminal.ts";
import { FrameDecoder } from "../../lib/shared/framing.ts";
import { type Connection, memoryPair } from "../../lib/shared/transport.ts";
import { startServer } from "../../testing/server_fixture.ts";

/** A terminal that types scripted lines and records what is printed. */
class ScriptTerminal implements Terminal {
  readonly interactive = false;
  readonly output: string[] = [];
  readonly #lines: string[];
  #waiting: ((line: string | null) => void) | undefined;
  #ended = false;

  constructor(lines: string[], options: { endAfter?: boolean } = {}) {
    this.#lines = [...lines];
    this.#ended = options.endAfter ?? true;
  }

  readLine(prompt: string): Promise<string | null> {
    this.output.push(prompt);
    if (this.#lines.length > 0) return Promise.resolve(this.#lines.shift()!);
    if (this.#ended) return Promise.resolve(null);
    return new Promise((resolve) => this.#waiting = resolve);
  }

  readSecret(prompt: string): Promise<string | null> {
    return this.readLine(prompt);
  }

  print(line: string): void {
    this.output.push(line);
  }

  status(): void {}

  close(): void {
    this.#waiting?.(null);
  }
}

Deno.test("runClient() logs in, runs commands and exits 0 on OUT", async () => {
  await using test = await startServer();
  const [clientEnd, serverEnd] = memoryPair();
  void test.server.handle(serverEnd);
  const terminal = new ScriptTerminal(["darth", "yoda", "sith", "jedi", "MSG hi", "", "OUT"]);
  assert.equal(await runClient({ conn: clientEnd, terminal, udpPort: 9000 }), 0);
  const out = terminal.output;
  assert.ok(out.includes("Username does not exist"));
  assert.ok(out.includes("Invalid Password. Please try again"));
  assert.ok(out.includes("Welcome to TOOM!"));
  assert.ok(out.includes("Message #1 posted at 23 Feb 2021 15:00:00."));
  assert.equal(out.at(-1), "Bye, yoda!");
  assert.match(test.file("userlog.txt"), /^$/);
});

Deno.test("runClient() exits 1 when the account gets blocked", async () => {
  await using test = await startServer({ maxFailures: 2 });
  const [clientEnd, serverEnd] = memoryPair();
  void test.server.handle(serverEnd);
  const terminal = new ScriptTerminal(["yoda", "a", "b", "jedi"]);
  assert.equal(await runClient({ conn: clientEnd, terminal, udpPort: 9000 }), 1);
  assert.equal(
    terminal.output.at(-1),
    "Invalid Password. Your account has been blocked. Please try again later",
  );
});

Deno.test("runClient() logs out cleanly at end of input", async () => {
  await using test = await startServer();
  const [clientEnd, serverEnd] = memoryPair();
  void test.server.handle(serverEnd);
  const terminal = new ScriptTerminal(["yoda", "jedi"]);
  assert.equal(await runClient({ conn: clientEnd, terminal, udpPort: 9000 }), 0);
  assert.equal(terminal.output.at(-1), "Bye, yoda!");
});

/** A fake server running; `await using` closes its end and waits for it at the end. */
interface FakeServer extends AsyncDisposable {
  /** Settles when the fake server has answered the login and run its script. */
  done: Promise<void>;
}

/** A fake server: answers hello and login, then runs `script` with its end of the link. */
function fakeServer(
  conn: Connection,
  script: (send: (text: string | Uint8Array) => Promise<void>) => Promise<void>,
): FakeServer {
  const done = serveFake(conn, script);
  return {
    done,
    async [Symbol.asyncDispose]() {
      conn.close();
      // Whatever it failed with was either awaited by the test already or is moot after a failure.
      await done.catch(() => {});
    },
  };
}

async function serveFake(
  conn: Connection,
  script: (send: (text: string | Uint8Array) => Promise<void>) => Promise<void>,
): Promise<void> {
  const writer = conn.writable.getWriter();
  const send = async (data: string | Uint8Array) => {
    await writer.write(typeof data === "string" ? new TextEncoder().encode(data) : data);
  };
  const reader = conn.readable.getReader();
  const decoder = new FrameDecoder();
  let loggedIn = false;
  while (!loggedIn) {
    const { value, done } = await reader.read();
    if (done) return;
    for (const text of decoder.push(value)) {
      const frame = JSON.parse(text);
      if (frame.t === "hello") await send('{"t":"hello","v":1,"server":"fake"}\n');
      if (frame.t === "user") await send(`{"t":"reply","id":${frame.id},"ok":true,"lines":[]}\n`);
      if (frame.t === "pass") {
        await send(`{"t":"reply","id":${frame.id},"ok":true,"lines":["Welcome to TOOM!"]}\n`);
        loggedIn = true;
      }
    }
  }
  reader.releaseLock();
  await script(send);
  writer.releaseLock();
}

const HOSTILE: Array<[string, string | Uint8Array]> = [
  ["garbage JSON", "{this is not json\n"],
  ["a JSON array", "[1,2,3]\n"],
  ["an oversized frame", "x".repeat(70_000)],
  ["invalid UTF-8", new Uint8Array([0x7b, 0xff, 0xfe, 0x7d, 0x0a])],
  ["a reply with lines of the wrong type", '{"t":"reply","id":3,"ok":true,"lines":[1,2]}\n'],
];

for (const [what, bytes] of HOSTILE) {
  Deno.test(`the client survives a server that sends ${what}`, async () => {
    const [clientEnd, serverEnd] = memoryPair();
    const terminal = new ScriptTerminal(["yoda", "jedi"], { endAfter: false });
    await using server = fakeServer(serverEnd, (send) => send(bytes));
    const exit = await runClient({ conn: clientEnd, terminal, udpPort: 9000 });
    await server.done;
    assert.equal(exit, 1);
    assert.match(terminal.output.at(-1)!, /Server sent a bad frame/);
  });
}

Deno.test("the client shows unknown events and replies to nobody, and carries on", async () => {
  const [clientEnd, serverEnd] = memoryPair();
  const terminal = new ScriptTerminal(["yoda", "jedi"], { endAfter: false });
  await using server = fakeServer(serverEnd, async (send) => {
    await send('{"t":"event","kind":"from-the-future","lines":["something new"]}\n');
    await send('{"t":"reply","id":999,"ok":true,"lines":["nobody asked"]}\n');
    await send(
      '{"t":"event","kind":"logout","lines":["You have been logged out due to inactivity"],' +
        '"data":{"reason":"timeout"}}\n',
    );
    serverEnd.close();
  });
  const exit = await runClient({ conn: clientEnd, terminal, udpPort: 9000 });
  await server.done;
  assert.equal(exit, 0);
  assert.ok(terminal.output.includes("something new"));
  assert.ok(!terminal.output.includes("nobody asked"));
  assert.equal(terminal.output.at(-1), "You have been logged out due to inactivity");
});

Deno.test("a logout because a passwd failure locked the account ends the client with 1", async () => {
  const [clientEnd, serverEnd] = memoryPair();
  const terminal = new ScriptTerminal(["yoda", "jedi"], { endAfter: false });
  await using server = fakeServer(serverEnd, async (send) => {
    await send(
      '{"t":"event","kind":"logout","lines":["You have been logged out: your account is ' +
        'blocked for now"],"data":{"reason":"blocked"}}\n',
    );
    serverEnd.close();
  });
  const exit = await runClient({ conn: clientEnd, terminal, udpPort: 9000 });
  await server.done;
  assert.equal(exit, 1);
  assert.ok(terminal.output.includes("You have been logged out: your account is blocked for now"));
});

Deno.test("the client says the connection is lost when the server goes away", async () => {
  const [clientEnd, serverEnd] = memoryPair();
  const terminal = new ScriptTerminal(["yoda", "jedi"], { endAfter: false });
  await using server = fakeServer(serverEnd, () => Promise.resolve(serverEnd.close()));
  assert.equal(await runClient({ conn: clientEnd, terminal, udpPort: 9000 }), 1);
  await server.done;
  assert.equal(terminal.output.at(-1), "Connection to server lost");
});
