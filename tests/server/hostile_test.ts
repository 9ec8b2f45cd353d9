/**
 * Bad input over real TCP sockets on 127.0.0.1: nothing a client sends may crash the server,
 * touch the files, or affect other users.
 */
import assert from "node:assert/strict";
import { MemoryFiles } from "../../lib/server/files.ts";
import { MemoryLogger } from "../../lib/shared/logger.ts";
import { ChatServer, type ServerConfig } from "../../lib/server/mod.ts";
import { serveTcp } from "../../lib/server/tcp_server.ts";
import { tcpConnection } from "../../lib/shared/transport.ts";
import { CREDENTIALS, TestClient, testConfig } from "../../testing/server_fixture.ts";

/** A server on a real TCP port; `await using` stops it (and its sessions) at the end. */
interface TcpFixture extends AsyncDisposable {
  port: number;
  files: MemoryFiles;
  logger: MemoryLogger;
  server: ChatServer;
  /** Stops listening and waits until every session has ended; idempotent. */
  stop(): Promise<void>;
}

async function tcpServer(overrides: Partial<ServerConfig> = {}): Promise<TcpFixture> {
  const files = new MemoryFiles();
  files.contents.set("credentials.txt", CREDENTIALS);
  const logger = new MemoryLogger();
  const server = new ChatServer(testConfig({ files, logger, ...overrides }));
  const controller = new AbortController();
  const listening = await serveTcp(server, {
    hostname: "127.0.0.1",
    port: 0,
    signal: controller.signal,
  });
  const stop = async () => {
    controller.abort();
    await listening.finished;
  };
  return { port: listening.port, files, logger, server, stop, [Symbol.asyncDispose]: stop };
}

/** A scripted client over TCP; `using` closes it at the end. */
async function tcpClient(port: number): Promise<TestClient> {
  return new TestClient(tcpConnection(await Deno.connect({ hostname: "127.0.0.1", port })));
}

/** Sends raw bytes and returns everything the server says until it closes (or 5 s pass). */
async function rawExchange(port: number, bytes: Uint8Array): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await conn.write(bytes).catch(() => 0);
  const chunks: Uint8Array[] = [];
  const buffer = new Uint8Array(65536);
  const failsafe = setTimeout(() => conn.close(), 5000);
  try {
    while (true) {
      const n = await conn.read(buffer);
      if (n === null) break;
      chunks.push(buffer.slice(0, n));
    }
  } catch {
    // Reset by the server, or closed by the failsafe.
  } finally {
    clearTimeout(failsafe);
    try {
      conn.close();
    } catch {
      // Already closed by the failsafe.
    }
  }
  return new TextDecoder().decode(new Uint8Array(chunks.flatMap((c) => [...c])));
}

/** A small seeded generator, so a failure can be replayed. */
function mulberry32(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const encode = (text: string) => new TextEncoder().encode(text);
const HELLO = '{"t":"hello","v":1}\n';

Deno.test("an oversized frame gets an error and a clean disconnect", async () => {
  await using fixture = await tcpServer();
  const said = await rawExchange(fixture.port, encode(HELLO + "x".repeat(70_000)));
  assert.match(said, /"code":"frame-too-large"/);
  assert.equal(fixture.server.connectionCount, 0);
});

Deno.test("invalid UTF-8 gets an error and a clean disconnect", async () => {
  await using fixture = await tcpServer();
  const bytes = new Uint8Array([...encode(HELLO), 0x7b, 0xc3, 0x28, 0x7d, 0x0a]);
  assert.match(await rawExchange(fixture.port, bytes), /"code":"invalid-utf8"/);
});

Deno.test("a frame before hello, or garbage JSON, ends the connection with a reason", async () => {
  await using fixture = await tcpServer();
  assert.match(
    await rawExchange(fixture.port, encode('{"t":"cmd","id":1,"line":"ATU"}\n')),
    /"code":"hello-expected"/,
  );
  assert.match(await rawExchange(fixture.port, encode(HELLO + "{nope\n")), /"code":"malformed"/);
  assert.match(
    await rawExchange(fixture.port, encode('{"t":"hello","v":99}\n')),
    /"code":"unsupported-version"/,
  );
});

Deno.test("an unknown frame type is answered and the session carries on", async () => {
  await using fixture = await tcpServer();
  using client = await tcpClient(fixture.port);
  await client.login("yoda", "jedi");
  using conn = await Deno.connect({ hostname: "127.0.0.1", port: fixture.port });
  await conn.write(encode(HELLO + '{"t":"teleport","id":1}\n{"t":"ping"}\n'));
  const buffer = new Uint8Array(4096);
  let text = "";
  while (!text.includes('"pong"')) {
    const n = await conn.read(buffer);
    if (n === null) break;
    text += new TextDecoder().decode(buffer.subarray(0, n));
  }
  assert.match(text, /"code":"unknown-frame"/);
  assert.match(text, /"t":"pong"/);
  conn.close();
  assert.equal((await client.cmd("ATU")).ok, true);
});

Deno.test("random bytes never crash the server or touch its files", async () => {
  await using fixture = await tcpServer();
  using yoda = await tcpClient(fixture.port);
  await yoda.login("yoda", "jedi", 6666);
  await yoda.cmd("MSG before");
  const userlog = fixture.files.contents.get("userlog.txt");
  const messagelog = fixture.files.contents.get("messagelog.txt");
  const random = mulberry32(42);
  for (let round = 0; round < 20; round++) {
    // Random bytes, then a newline so the server has a whole (bad) frame to judge.
    const bytes = Uint8Array.from({ length: 2000 }, () => Math.floor(random() * 256));
    const prefix = round % 2 ? [] : [...encode(HELLO)];
    await rawExchange(fixture.port, new Uint8Array([...prefix, ...bytes, 0x0a]));
  }
  assert.equal(fixture.files.contents.get("userlog.txt"), userlog);
  assert.equal(fixture.files.contents.get("messagelog.txt"), messagelog);
  assert.equal((await yoda.cmd("MSG after")).ok, true);
});

Deno.test("hundreds of idle half-open connections do not keep a real user out", async () => {
  await using fixture = await tcpServer({ maxPendingLogins: 100 });
  using idle = new DisposableStack(); // closes every idle connection at the end
  for (let i = 0; i < 300; i++) {
    idle.use(await Deno.connect({ hostname: "127.0.0.1", port: fixture.port }));
  }
  using yoda = await tcpClient(fixture.port);
  assert.equal((await yoda.login("yoda", "jedi")).ok, true);
  assert.ok(fixture.server.connectionCount <= 101);
});

Deno.test("an abrupt disconnect mid-command leaves every file consistent", async () => {
  await using fixture = await tcpServer();
  using vader = await tcpClient(fixture.port);
  await vader.login("vader", "sithlord", 7000);
  for (let i = 0; i < 10; i++) {
    using conn = await Deno.connect({ hostname: "127.0.0.1", port: fixture.port });
    await conn.write(encode(
      HELLO +
        '{"t":"user","id":1,"name":"yoda"}\n{"t":"pass","id":2,"password":"jedi","udpPort":1}\n',
    ));
    // Wait for the welcome, then send a command and half of the next, and vanish.
    const buffer = new Uint8Array(4096);
    let said = "";
    while (!said.includes("Welcome")) {
      const n = await conn.read(buffer);
      if (n === null) break;
      said += new TextDecoder().decode(buffer.subarray(0, n));
    }
    await conn.write(
      encode(`{"t":"cmd","id":3,"line":"MSG abrupt ${i}"}\n{"t":"cmd","id":4,"line":"MS`),
    );
    conn.close();
    // Wait (bounded) until the server has dealt with the vanished connection.
    for (let wait = 0; wait < 500 && fixture.server.connectionCount > 1; wait++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }
  assert.equal(fixture.server.state.roster.online.has("yoda"), false);
  assert.match(
    fixture.files.contents.get("userlog.txt")!,
    /^1; [^\n]*; vader; 127\.0\.0\.1; 7000\n$/,
  );
  const board = fixture.files.contents.get("messagelog.txt")!.split("\n").filter(Boolean);
  board.forEach((line, i) =>
    assert.match(line, new RegExp(`^${i + 1}; .*; yoda; abrupt \\d; no$`))
  );
});

Deno.test("a client that stops reading is disconnected instead of stalling others", async () => {
  await using fixture = await tcpServer({ sendQueueBytes: 64 * 1024, commandBurst: 100_000 });
  using yoda = await tcpClient(fixture.port);
  await yoda.login("yoda", "jedi");
  using slow = await Deno.connect({ hostname: "127.0.0.1", port: fixture.port });
  // Log in, then never read again: broadcasts to it back up until its budget runs out.
  await slow.write(encode(
    HELLO + '{"t":"user","id":1,"name":"vader"}\n' +
      '{"t":"pass","id":2,"password":"sithlord","udpPort":1}\n',
  ));
  await yoda.waitFor("vader logged in");
  // The kernel buffers megabytes on loopback before the server's own queue starts to grow.
  for (let i = 0; i < 20_000; i++) {
    const sent = await yoda.cmd(`broadcast ${i} ${"x".repeat(900)}`);
    assert.equal(sent.ok, true, `${i}: ${sent.lines.join(" ")}`);
    if (fixture.logger.warnings.some((w) => w.includes("Send queue exceeded"))) break;
  }
  assert.ok(
    fixture.logger.warnings.some((w) => w.includes("vader") && w.includes("Send queue exceeded")),
  );
  await yoda.waitFor("vader logged out");
  assert.equal((await yoda.cmd("MSG still fine")).ok, true);
});

Deno.test("a reply larger than the send queue budget streams to a reader that keeps up", async () => {
  await using fixture = await tcpServer({ sendQueueBytes: 64 * 1024, commandBurst: 1000 });
  using yoda = await tcpClient(fixture.port);
  await yoda.login("yoda", "jedi");
  for (let i = 0; i < 400; i++) await yoda.cmd(`MSG ${i} ${"x".repeat(900)}`);
  const reply = await yoda.cmd("RDM 01 Jan 2000 00:00:00");
  assert.equal(reply.lines.length, 400);
  assert.ok(!fixture.logger.warnings.some((w) => w.includes("Send queue exceeded")));
});

Deno.test("a second server on a busy port fails without touching the first one's files", async () => {
  await using first = await tcpServer();
  using client = await tcpClient(first.port);
  assert.equal((await client.login("yoda", "jedi")).ok, true);
  assert.equal((await client.cmd("MSG still here")).ok, true);
  const before = [
    first.files.contents.get("userlog.txt"),
    first.files.contents.get("messagelog.txt"),
  ];
  assert.match(before[1] ?? "", /still here/);
  const second = new ChatServer(testConfig({ files: first.files }));
  await assert.rejects(
    serveTcp(second, {
      hostname: "127.0.0.1",
      port: first.port,
      signal: new AbortController().signal,
    }),
    Deno.errors.AddrInUse,
  );
  assert.deepEqual(
    [first.files.contents.get("userlog.txt"), first.files.contents.get("messagelog.txt")],
    before,
  );
});
