/**
 * Replies held until their change is committed (lib/server/chat_server.ts `#command`, Session
 * `inTurn`): the session reads on meanwhile, replies still leave in the order their frames came,
 * a failed commit is the reply, and the events a command caused follow its reply. Commits are
 * settled by hand through a gated storage; one client's frames are read off the wire in order.
 */
import assert from "node:assert/strict";
import { FrameDecoder } from "../../lib/shared/framing.ts";
import { decodeServerFrame, type ServerFrame } from "../../lib/shared/protocol.ts";
import { type Connection, memoryPair } from "../../lib/shared/transport.ts";
import { ahead, gatedStorage, promptly } from "../../testing/gated_storage.ts";
import {
  loggedIn,
  memoryAddress,
  settle,
  startServer,
  TestClient,
  type TestServer,
} from "../../testing/server_fixture.ts";

const OFFLINE_REPLY = "vader is offline; the message will be delivered when they log in.";
const STORE_FAILED = "The server could not store the message; try again later.";

/** A client, and every frame the server sent it, in the order the server sent them. */
interface TappedClient {
  client: TestClient;
  wire: ServerFrame[];
}

/**
 * Connects a client whose server end records each frame as the server writes it. Not closed by
 * the fixture: declare it with `using`.
 */
function tappedClient(test: TestServer): TappedClient & Disposable {
  const wire: ServerFrame[] = [];
  const [clientEnd, serverEnd] = memoryPair(
    memoryAddress("127.0.0.1:0"),
    memoryAddress("127.0.0.1:120"),
  );
  const decoder = new FrameDecoder();
  const tap: Connection = {
    remoteAddr: serverEnd.remoteAddr,
    read: (buffer) => serverEnd.read(buffer),
    async write(bytes) {
      const written = await serverEnd.write(bytes);
      for (const text of decoder.push(bytes.subarray(0, written))) {
        wire.push(decodeServerFrame(text));
      }
      return written;
    },
    get readable() {
      return serverEnd.readable;
    },
    get writable() {
      return serverEnd.writable;
    },
    close: () => serverEnd.close(),
  };
  void test.server.handle(tap);
  const client = new TestClient(clientEnd);
  return { client, wire, [Symbol.dispose]: () => client.close() };
}

/** Replies and events from `from` on, one line each: `reply <ok|code>: …` or `<kind>: …`. */
function heard(wire: ServerFrame[], from: number): string[] {
  return wire.slice(from).flatMap((frame) => {
    if (frame.t === "reply") return [`reply ${frame.ok ? "ok" : frame.code}: ${frame.lines[0]}`];
    if (frame.t === "event") return [`${frame.kind}: ${frame.lines[0]}`];
    return [];
  });
}

/** Waits until `done()` holds, failing the test if it does not after some turns. */
async function until(what: string, done: () => boolean): Promise<void> {
  for (let turn = 0; turn < 500 && !done(); turn++) await settle();
  assert.ok(done(), `Timed out waiting until ${what}`);
}

/** Logs a tapped client in as `user`, failing the test if that does not work. */
async function logIn(tapped: TappedClient, user: string, password: string, udpPort = 8000) {
  const reply = await tapped.client.login(user, password, udpPort);
  assert.equal(reply.ok, true, `Login of ${user}: ${reply.lines.join(" ")}`);
}

/**
 * A server on a gated storage (commits settled by the test) with yoda logged in through a tapped
 * client (UDP port `udpPort`); disposing of it closes both.
 */
async function yodaOnGatedStore(udpPort?: number) {
  const storage = gatedStorage();
  const test = await startServer({ storage });
  const yoda = tappedClient(test);
  try {
    await logIn(yoda, "yoda", "jedi", udpPort);
  } catch (error) {
    yoda[Symbol.dispose]();
    await test.close();
    throw error;
  }
  return {
    storage,
    test,
    yoda,
    async [Symbol.asyncDispose]() {
      yoda[Symbol.dispose]();
      await test.close();
    },
  };
}

Deno.test("a reply held for its commit keeps the replies of later frames behind it", async () => {
  await using held = await yodaOnGatedStore();
  const { storage, test, yoda } = held;
  await loggedIn(test, "hans", "falcon");
  const mark = yoda.wire.length;
  // Sent together, without waiting: a held reply, then replies that need no commit, whether the
  // handler answers (whoelse), fails (unknown user) or no handler runs (invalid command).
  const replies = ahead(Promise.all([
    yoda.client.cmd("message vader are you there"),
    yoda.client.cmd("whoelse"),
    yoda.client.cmd("message darth hello"),
    yoda.client.cmd("frobnicate"),
  ]));
  const [mail] = await storage.waitHeld(1);
  assert.equal(mail!.change.t, "mail");
  await settle();
  assert.deepEqual(heard(yoda.wire, mark), [], "nothing may overtake the held reply");
  mail!.commit();
  await replies;
  assert.deepEqual(heard(yoda.wire, mark), [
    `reply ok: ${OFFLINE_REPLY}`,
    "reply ok: hans",
    "reply failed: User darth does not exist.",
    "reply invalid-command: Error. Invalid command!",
  ]);
});

Deno.test("while a reply waits for its commit the session reads on and handles the next frames", async () => {
  await using held = await yodaOnGatedStore();
  const { storage, test, yoda } = held;
  const vader = await loggedIn(test, "vader", "sithlord");
  const mark = yoda.wire.length;
  const blocked = ahead(yoda.client.cmd("block vader"));
  const posted = ahead(yoda.client.cmd("MSG written while blocking"));
  const [block] = await storage.waitHeld(1);
  assert.deepEqual(block!.change, { t: "block", by: "yoda", other: "vader" });
  // The post after the held block has been handled: it is on the board and in messagelog.txt.
  await until("the post is on the board", () => test.server.state.store.board.size === 1);
  assert.match(test.file("messagelog.txt"), /^1; .*; yoda; written while blocking; no\n$/);
  // The block is in force before it is committed: vader is refused at once.
  const refused = await promptly(vader.cmd("message yoda let me in"));
  assert.equal(refused.ok, false);
  assert.deepEqual(refused.lines, [
    "Your message could not be delivered as the recipient has blocked you",
  ]);
  assert.equal(storage.held.length, 1, "the block is still waiting for its commit");
  assert.deepEqual(heard(yoda.wire, mark), []);
  block!.commit();
  await Promise.all([blocked, posted]);
  assert.deepEqual(heard(yoda.wire, mark), [
    "reply ok: vader is blocked",
    "reply ok: Message #1 posted at 23 Feb 2021 15:00:00.",
  ]);
});

Deno.test("replies leave in frame order even when a later commit lands first", async () => {
  await using held = await yodaOnGatedStore();
  const { storage, test, yoda } = held;
  const mark = yoda.wire.length;
  const replies = ahead(Promise.all([
    yoda.client.cmd("message vader one"),
    yoda.client.cmd("message vader two"),
  ]));
  // Both are held at once: the second frame was handled while the first waited.
  const [first, second] = await storage.waitHeld(2);
  assert.deepEqual(
    [first, second].map((held) => held!.change.t === "mail" && held!.change.mail.line),
    ["yoda: one", "yoda: two"],
  );
  second!.commit();
  await settle();
  assert.deepEqual(heard(yoda.wire, mark), [], "the second reply waits for the first");
  first!.commit();
  await replies;
  assert.deepEqual(heard(yoda.wire, mark), [
    `reply ok: ${OFFLINE_REPLY}`,
    `reply ok: ${OFFLINE_REPLY}`,
  ]);
  const vader = await loggedIn(test, "vader", "sithlord");
  await vader.waitFor("yoda: two");
  assert.deepEqual(vader.events.filter((e) => e.kind === "message").flatMap((e) => e.lines), [
    "yoda: one",
    "yoda: two",
  ]);
});

Deno.test("a failed commit is the reply, in its turn, and the message never reaches its recipient", async () => {
  await using held = await yodaOnGatedStore();
  const { storage, test, yoda } = held;
  await loggedIn(test, "hans", "falcon");
  const mark = yoda.wire.length;
  const lost = ahead(yoda.client.cmd("message vader lost words"));
  const kept = ahead(yoda.client.cmd("message vader kept words"));
  const who = ahead(yoda.client.cmd("whoelse"));
  const [failing, committing] = await storage.waitHeld(2);
  committing!.commit();
  failing!.fail();
  const reply = await lost;
  assert.deepEqual(reply, { ok: false, code: "failed", lines: [STORE_FAILED] });
  await Promise.all([kept, who]);
  assert.deepEqual(heard(yoda.wire, mark), [
    `reply failed: ${STORE_FAILED}`,
    `reply ok: ${OFFLINE_REPLY}`,
    "reply ok: hans",
  ]);
  assert.equal(test.server.state.store.mailbox.count("vader"), 1);
  // At vader's login only the message that was written down arrives.
  const vader = await loggedIn(test, "vader", "sithlord");
  await vader.waitFor("yoda: kept words");
  await settle();
  assert.deepEqual(vader.events.filter((e) => e.kind === "message").flatMap((e) => e.lines), [
    "yoda: kept words",
  ]);
});

Deno.test("a failed block is a failure reply and is lifted: the blocked user gets through", async () => {
  const storage = gatedStorage();
  await using test = await startServer({ storage });
  const yoda = await loggedIn(test, "yoda", "jedi");
  const vader = await loggedIn(test, "vader", "sithlord");
  const blocked = ahead(yoda.cmd("block vader"));
  const [block] = await storage.waitHeld(1);
  assert.equal((await promptly(vader.cmd("message yoda while held"))).ok, false);
  block!.fail();
  const reply = await blocked;
  assert.equal(reply.ok, false);
  assert.equal(reply.code, "failed");
  assert.equal(test.server.state.store.relations.hasBlocked("yoda", "vader"), false);
  assert.deepEqual((await vader.cmd("message yoda after all")).lines, ["Message sent to yoda."]);
  await yoda.waitFor("vader: after all");
});

Deno.test("a held block sends its reply first, then the end of the private session it caused", async () => {
  await using held = await yodaOnGatedStore(7001);
  const { storage, test, yoda } = held;
  const hans = await loggedIn(test, "hans", "falcon", 7002);
  await yoda.client.cmd("startprivate hans");
  const ask = await hans.waitForEvent((event) => event.kind === "ask");
  const askId = (ask.data as { ask: number }).ask;
  assert.equal((await hans.link.request({ t: "answer", ask: askId, yes: true })).ok, true);
  await yoda.client.waitFor("Start private messaging with hans");
  const mark = yoda.wire.length;
  const blocked = ahead(yoda.client.cmd("block hans"));
  const [block] = await storage.waitHeld(1);
  await settle();
  assert.deepEqual(heard(yoda.wire, mark), []);
  assert.equal(hans.events.some((event) => event.kind === "private-stop"), false);
  block!.commit();
  await blocked;
  await hans.waitFor("Private messaging with yoda ended");
  await until("yoda hears the end", () => heard(yoda.wire, mark).length === 2);
  assert.deepEqual(heard(yoda.wire, mark), [
    "reply ok: hans is blocked",
    "private-stop: Private messaging with hans ended",
  ]);
});

Deno.test("a message to an online user waits behind a held reply, event and all", async () => {
  await using held = await yodaOnGatedStore();
  const { storage, test, yoda } = held;
  const hans = await loggedIn(test, "hans", "falcon");
  const mark = yoda.wire.length;
  const replies = ahead(Promise.all([
    yoda.client.cmd("message vader first"),
    yoda.client.cmd("message hans second"),
  ]));
  const [mail] = await storage.waitHeld(1);
  await settle();
  // hans's message needed no commit, but it was sent after the held one: neither is out yet.
  assert.equal(hans.eventLines.includes("yoda: second"), false);
  assert.deepEqual(heard(yoda.wire, mark), []);
  mail!.commit();
  await replies;
  await hans.waitFor("yoda: second");
  assert.deepEqual(heard(yoda.wire, mark), [
    `reply ok: ${OFFLINE_REPLY}`,
    "reply ok: Message sent to hans.",
  ]);
});
