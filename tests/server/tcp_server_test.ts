/**
 * The listener: TLS on real sockets on 127.0.0.1 (a failed handshake costs only its own
 * connection), and an accept loop that no accept failure ends, only the abort signal.
 */
import assert from "node:assert/strict";
import { MemoryFiles } from "../../lib/server/files.ts";
import { MemoryLogger } from "../../lib/shared/logger.ts";
import { FakeClock } from "../../lib/shared/clock.ts";
import { ChatServer } from "../../lib/server/mod.ts";
import { acceptLoop, type Acceptor, serveTcp } from "../../lib/server/tcp_server.ts";
import { createSelfSigned } from "../../lib/server/certificate.ts";
import { connectTls } from "../../lib/client/tls_connect.ts";
import { MemoryKnownServers } from "../../lib/client/known_servers.ts";
import { CREDENTIALS, TestClient, testConfig } from "../../testing/server_fixture.ts";

Deno.test("serveTcp() with TLS serves clients, and a failed handshake costs only its connection", async () => {
  const files = new MemoryFiles();
  files.contents.set("credentials.txt", CREDENTIALS);
  const logger = new MemoryLogger();
  const clock = new FakeClock();
  const server = new ChatServer(testConfig({ files, logger, clock }));
  const identity = await createSelfSigned();
  const controller = new AbortController();
  const listening = await serveTcp(server, {
    hostname: "127.0.0.1",
    port: 0,
    signal: controller.signal,
    tls: { cert: identity.cert, key: identity.key },
  });
  const dial = () =>
    connectTls({
      hostname: "127.0.0.1",
      port: listening.port,
      knownServers: new MemoryKnownServers(),
    });
  try {
    using yoda = new TestClient(await dial());
    assert.equal((await yoda.login("yoda", "jedi")).ok, true);
    // Plain clients (a --no-tls client, a scanner) on the TLS port: each gets nothing.
    const plainClient = async () => {
      const plain = await Deno.connect({ hostname: "127.0.0.1", port: listening.port });
      await plain.write(new TextEncoder().encode('{"t":"hello","v":1}\n'));
      const buffer = new Uint8Array(1024);
      const reply: number[] = [];
      while (true) {
        const n = await plain.read(buffer).catch(() => null);
        if (n === null) break;
        reply.push(...buffer.subarray(0, n));
      }
      plain.close();
      assert.equal(reply[0], 21, "a TLS alert, never a frame");
    };
    for (let i = 0; i < 2; i++) await plainClient();
    using hans = new TestClient(await dial());
    assert.equal((await hans.login("hans", "falcon")).ok, true);
    assert.deepEqual((await yoda.cmd("message hans still here")).lines, ["Message sent to hans."]);
    await hans.waitForEvent((event) => event.kind === "message");
    const failures = () => logger.warnings.filter((line) => line.startsWith("TLS handshake"));
    assert.equal(failures().length, 1, "logged once a minute, not per failure");
    assert.match(
      failures()[0]!,
      /^TLS handshake with 127\.0\.0\.1:\d+ failed \(.*\); a client started with --no-tls cannot talk to a TLS server$/,
    );
    // A minute later the next failure is logged again, with the count of those not logged.
    clock.advance(60_000);
    await plainClient();
    assert.equal(failures().length, 2);
    assert.match(failures()[1]!, /TLS server \(1 more since the last one logged\)$/);
  } finally {
    controller.abort();
    await listening.finished;
  }
});

Deno.test("serveTcp() refuses a key that does not belong to the certificate before starting", async () => {
  const server = new ChatServer(testConfig());
  const [one, other] = [await createSelfSigned(), await createSelfSigned()];
  await assert.rejects(
    serveTcp(server, {
      hostname: "127.0.0.1",
      port: 0,
      signal: new AbortController().signal,
      tls: { cert: one.cert, key: other.key },
    }),
  );
});

/** A listener whose accepts fail with `errors` first, then wait until it is closed. */
class FailingAcceptor implements Acceptor {
  closed = false;
  accepts = 0;
  #wake: (() => void) | undefined;
  constructor(readonly errors: Error[], readonly conns: Deno.Conn[] = []) {}
  accept(): Promise<Deno.Conn> {
    this.accepts++;
    const error = this.errors.shift();
    if (error) return Promise.reject(error);
    const conn = this.conns.shift();
    if (conn) return Promise.resolve(conn);
    if (this.closed) return Promise.reject(new Deno.errors.BadResource("closed"));
    return new Promise((_, reject) => {
      this.#wake = () => reject(new Deno.errors.BadResource("closed"));
    });
  }
  close(): void {
    this.closed = true;
    this.#wake?.();
  }
}

const EMFILE = () => new Error("Too many open files (os error 24)");

Deno.test("acceptLoop() goes on after accept failures such as EMFILE, saying so once", async () => {
  const fake = { close() {} } as unknown as Deno.Conn;
  const listener = new FailingAcceptor([EMFILE(), EMFILE(), EMFILE()], [fake]);
  const logger = new MemoryLogger();
  const controller = new AbortController();
  const accepted: Deno.Conn[] = [];
  let onAccept!: () => void;
  const acceptedOne = new Promise<void>((resolve) => onAccept = resolve);
  const loop = acceptLoop(listener, {
    signal: controller.signal,
    logger,
    backoffMs: 1,
    onConnection: (conn) => {
      accepted.push(conn);
      onAccept();
    },
  });
  await acceptedOne;
  assert.deepEqual(accepted, [fake]);
  assert.deepEqual(logger.warnings, [
    "Cannot accept connections (Too many open files (os error 24)); pausing and retrying until " +
    "it works",
    "Accepting connections again (after 3 failed attempts)",
  ]);
  controller.abort();
  await loop;
  assert.equal(listener.closed, true);
  assert.equal(listener.accepts, 5);
});

Deno.test("acceptLoop() passes over connections gone before they were accepted, unlogged", async () => {
  const fake = { close() {} } as unknown as Deno.Conn;
  const gone = [
    new Deno.errors.NotConnected("Transport endpoint is not connected (os error 107)"),
    new Deno.errors.ConnectionReset("Connection reset by peer (os error 104)"),
    new Deno.errors.ConnectionAborted("Software caused connection abort (os error 103)"),
  ];
  const listener = new FailingAcceptor(gone, [fake]);
  const logger = new MemoryLogger();
  const controller = new AbortController();
  let onAccept!: () => void;
  const acceptedOne = new Promise<void>((resolve) => onAccept = resolve);
  // A pause would take a minute: the test would time out.
  const loop = acceptLoop(listener, {
    signal: controller.signal,
    logger,
    backoffMs: 60_000,
    onConnection: () => onAccept(),
  });
  await acceptedOne;
  assert.deepEqual(logger.warnings, []);
  assert.equal(listener.accepts, 5, "three gone, one accepted, and the next awaited");
  controller.abort();
  await loop;
});

Deno.test("acceptLoop() ends at once when aborted while pausing after a failure", async () => {
  const listener = new FailingAcceptor(Array.from({ length: 100 }, EMFILE));
  const logger = new MemoryLogger();
  const controller = new AbortController();
  const loop = acceptLoop(listener, {
    signal: controller.signal,
    logger,
    backoffMs: 3_600_000,
    onConnection: () => assert.fail("nothing to accept"),
  });
  await Promise.resolve();
  controller.abort();
  await loop;
  assert.equal(listener.accepts, 1);
  assert.equal(logger.warnings.length, 1);
});
