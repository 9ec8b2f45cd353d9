/**
 * How the server core reads and delivers (lib/server/chat_server.ts): with `read` and `write`, not
 * streams; an event for many users encoded once; long frames; the limit on connections waiting to
 * log in.
 */
import assert from "node:assert/strict";
import { Session } from "../../lib/server/session.ts";
import { type Connection, memoryPair } from "../../lib/shared/transport.ts";
import {
  loggedIn,
  memoryAddress,
  PASSWORDS,
  settle,
  startServer,
  TestClient,
} from "../../testing/server_fixture.ts";

/** Records every `sendBytes` call (with its session's user) while `fn` runs. */
async function recordingSends(
  fn: () => Promise<void>,
): Promise<Array<{ user: string; bytes: Uint8Array }>> {
  const sent: Array<{ user: string; bytes: Uint8Array }> = [];
  const original = Session.prototype.sendBytes;
  Session.prototype.sendBytes = function (this: Session, bytes: Uint8Array) {
    sent.push({ user: this.user, bytes });
    return original.call(this, bytes);
  };
  try {
    await fn();
  } finally {
    Session.prototype.sendBytes = original;
  }
  return sent;
}

Deno.test("a broadcast is encoded once: every recipient is sent the same bytes", async () => {
  await using test = await startServer();
  const [yoda, vader, hans] = [
    await loggedIn(test, "yoda", PASSWORDS.yoda!),
    await loggedIn(test, "vader", PASSWORDS.vader!),
    await loggedIn(test, "hans", PASSWORDS.hans!),
  ];
  const sent = await recordingSends(async () => {
    await yoda.cmd("broadcast hello all");
    await vader.waitFor("yoda: hello all");
    await hans.waitFor("yoda: hello all");
  });
  const events = sent.filter(({ bytes }) => new TextDecoder().decode(bytes).includes("hello all"));
  assert.deepEqual(events.map(({ user }) => user).sort(), ["hans", "vader"]);
  assert.equal(events[0]!.bytes, events[1]!.bytes);
  assert.equal(
    new TextDecoder().decode(events[0]!.bytes),
    '{"t":"event","kind":"broadcast","lines":["yoda: hello all"],"data":{"from":"yoda"}}\n',
  );
});

Deno.test("a presence notice is encoded once for all who are told", async () => {
  await using test = await startServer();
  const yoda = await loggedIn(test, "yoda", PASSWORDS.yoda!);
  const vader = await loggedIn(test, "vader", PASSWORDS.vader!);
  const sent = await recordingSends(async () => {
    await loggedIn(test, "hans", PASSWORDS.hans!);
    await yoda.waitFor("hans logged in");
    await vader.waitFor("hans logged in");
  });
  const notices = sent.filter(({ bytes }) => new TextDecoder().decode(bytes).includes("presence"));
  assert.equal(notices.length, 2);
  assert.equal(notices[0]!.bytes, notices[1]!.bytes);
});

/** A connection whose streams must not be touched (the server reads and writes directly). */
function withoutStreams(conn: Connection): Connection {
  return {
    remoteAddr: conn.remoteAddr,
    read: (buffer) => conn.read(buffer),
    write: (bytes) => conn.write(bytes),
    get readable(): ReadableStream<Uint8Array> {
      throw new Error("The server made a read stream");
    },
    get writable(): WritableStream<Uint8Array> {
      throw new Error("The server made a write stream");
    },
    close: () => conn.close(),
  };
}

Deno.test("the server never makes a connection's streams", async () => {
  await using test = await startServer();
  const [clientEnd, serverEnd] = memoryPair(
    memoryAddress("127.0.0.1:5"),
    memoryAddress("127.0.0.1:120"),
  );
  const served = test.server.handle(withoutStreams(serverEnd));
  using client = new TestClient(clientEnd);
  assert.equal((await client.login("yoda", "jedi")).ok, true);
  assert.deepEqual((await client.cmd("OUT")).lines, ["Bye, yoda!"]);
  await served;
  assert.deepEqual(test.logger.warnings, []);
});

Deno.test("a frame longer than the read buffer is read whole, and frames after it too", async () => {
  await using test = await startServer();
  const yoda = await loggedIn(test, "yoda", PASSWORDS.yoda!);
  const long = "x".repeat(60_000);
  const reply = await yoda.cmd(`MSG ${long}`);
  assert.equal(reply.ok, false);
  assert.equal(reply.code, "usage");
  assert.deepEqual((await yoda.cmd("whoelse")).lines, ["No other user is online."]);
});

Deno.test("beyond the limit of connections waiting to log in, the oldest are dropped", async () => {
  await using test = await startServer({ maxPendingLogins: 2, maxPendingPerIp: 0 });
  const yoda = await loggedIn(test, "yoda", PASSWORDS.yoda!);
  const waiting = Array.from({ length: 4 }, (_, i) => test.connect(memoryAddress(`10.0.1.${i}:1`)));
  await settle();
  assert.equal(await waiting[0]!.link.closed, "Connection to server lost");
  assert.equal(await waiting[1]!.link.closed, "Connection to server lost");
  assert.equal((await waiting[2]!.login("vader", "sithlord")).ok, true);
  assert.equal((await waiting[3]!.login("hans", "falcon")).ok, true);
  // Logged-in users are not waiting: two more may wait.
  const more = [
    test.connect(memoryAddress("10.0.1.9:1")),
    test.connect(memoryAddress("10.0.1.9:2")),
  ];
  await settle();
  assert.equal((await more[0]!.login("obiwan", "hellothere")).ok, true);
  assert.equal((await yoda.cmd("whoelse")).ok, true);
  assert.equal(
    test.logger.warnings.filter((line) => line.endsWith("Too many connections waiting to log in"))
      .length,
    2,
  );
});
