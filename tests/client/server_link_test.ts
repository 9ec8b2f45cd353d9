/**
 * The client's link to the server, on a clock that moves only when a test says so: heartbeats,
 * the 45 s liveness deadline, and pacing inside the budget the server announces in hello.
 */
import assert from "node:assert/strict";
import { ServerLink } from "../../lib/client/server_link.ts";
import { FrameDecoder } from "../../lib/shared/framing.ts";
import { type Connection, memoryPair } from "../../lib/shared/transport.ts";
import { ManualClock, settle } from "../../testing/p2p_fixture.ts";
import { startServer } from "../../testing/server_fixture.ts";

/** The server's end of a link, scripted: it records every frame and sends what a test says. */
class ScriptedServer {
  readonly frames: Array<Record<string, unknown>> = [];
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly #reading: Promise<void>;

  constructor(readonly conn: Connection) {
    this.#writer = conn.writable.getWriter();
    this.#reading = this.#read();
  }

  async #read(): Promise<void> {
    const decoder = new FrameDecoder();
    const reader = this.conn.readable.getReader();
    try {
      while (true) {
        const { value, done } = await reader.read();
        if (done) return;
        for (const text of decoder.push(value)) this.frames.push(JSON.parse(text));
      }
    } catch {
      // The link closed both ends.
    } finally {
      reader.releaseLock();
    }
  }

  /** Frames of type `t` received so far. */
  of(t: string): Array<Record<string, unknown>> {
    return this.frames.filter((frame) => frame.t === t);
  }

  async send(frame: object): Promise<void> {
    await this.#writer.write(new TextEncoder().encode(JSON.stringify(frame) + "\n"));
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.#writer.releaseLock();
    this.conn.close();
    await this.#reading;
  }
}

/** A link on a manual clock, said hello to by a scripted server announcing `limits`. */
async function helloLink(limits?: { burst: number; perSecond: number }) {
  const clock = new ManualClock();
  const [clientEnd, serverEnd] = memoryPair();
  const server = new ScriptedServer(serverEnd);
  const link = new ServerLink(clientEnd, { clock, onEvent: () => {} });
  let reason: string | undefined;
  void link.closed.then((why) => reason = why);
  const hello = link.hello();
  await settle();
  await server.send({ t: "hello", v: 1, server: "scripted", ...(limits ? { limits } : {}) });
  await hello;
  return {
    clock,
    server,
    link,
    reason: () => reason,
    async [Symbol.asyncDispose]() {
      link.close();
      await server[Symbol.asyncDispose]();
    },
  };
}

Deno.test("ServerLink declares a silent server lost exactly 45 s after its last frame", async () => {
  await using t = await helloLink();
  await t.clock.advance(10_000);
  await t.server.send({ t: "pong" });
  await settle();
  await t.clock.advance(44_999);
  assert.equal(t.reason(), undefined, "still alive 1 ms before the deadline");
  await t.clock.advance(1);
  assert.equal(t.reason(), "Connection to server lost");
});

Deno.test("ServerLink stays up while the server answers, and pings every 15 s", async () => {
  await using t = await helloLink();
  for (let i = 1; i <= 6; i++) {
    await t.clock.advance(15_000);
    assert.equal(t.server.of("ping").length, i);
    await t.server.send({ t: "pong" });
    await settle();
  }
  assert.equal(t.reason(), undefined);
});

Deno.test("ServerLink sends a burst at once, then the rest at the paced rate, in order", async () => {
  // A budget of 10 and 10/s is paced at 8 and 9/s; hello took one of the 8.
  await using t = await helloLink({ burst: 10, perSecond: 10 });
  assert.deepEqual(t.link.limits, { burst: 10, perSecond: 10 });
  const replies = Array.from(
    { length: 30 },
    (_, i) => t.link.request({ t: "cmd", line: `MSG ${i}` }).catch(() => undefined),
  );
  await settle();
  assert.equal(t.server.of("cmd").length, 7);
  await t.clock.advance(100);
  assert.equal(t.server.of("cmd").length, 7, "the next token is 111 ms away");
  await t.clock.advance(950);
  assert.equal(t.server.of("cmd").length, 7 + 9);
  await t.clock.advance(2_000);
  assert.deepEqual(
    t.server.of("cmd").map((frame) => frame.line),
    Array.from({ length: 30 }, (_, i) => `MSG ${i}`),
  );
  t.link.close();
  await Promise.all(replies);
});

Deno.test("ServerLink paces heartbeats too, queued behind earlier frames", async () => {
  await using t = await helloLink({ burst: 2, perSecond: 1 });
  // Paced at 1 frame and 0.9/s: hello took the only token.
  const reply = t.link.request({ t: "cmd", line: "ATU" }).catch(() => undefined);
  t.link.heartbeat();
  await settle();
  assert.deepEqual(t.server.frames.map((frame) => frame.t), ["hello"]);
  await t.clock.advance(1_112);
  assert.deepEqual(t.server.frames.map((frame) => frame.t), ["hello", "cmd"]);
  await t.clock.advance(1_112);
  assert.deepEqual(t.server.frames.map((frame) => frame.t), ["hello", "cmd", "ping"]);
  t.link.close();
  await reply;
});

Deno.test("ServerLink paces by the documented default when hello announces no budget", async () => {
  await using t = await helloLink();
  assert.deepEqual(t.link.limits, { burst: 100, perSecond: 50 });
  const replies = Array.from(
    { length: 100 },
    () => t.link.request({ t: "cmd", line: "ATU" }).catch(() => undefined),
  );
  await settle();
  assert.equal(t.server.of("cmd").length, 79); // 80 paced, less hello
  t.link.close();
  await Promise.all(replies);
});

Deno.test("ServerLink tells whether a lost request had been sent", async () => {
  await using t = await helloLink({ burst: 3, perSecond: 1 });
  // Paced at 2: hello and the first request go, the second waits for a token.
  const first = t.link.request({ t: "cmd", line: "MSG one" });
  const second = t.link.request({ t: "cmd", line: "MSG two" });
  const outcomes = Promise.allSettled([first, second]);
  await settle();
  t.link.close("Connection to server lost");
  const [a, b] = await outcomes;
  assert.ok(a.status === "rejected" && b.status === "rejected");
  assert.deepEqual([a.reason.sent, b.reason.sent], [true, false]);
});

Deno.test("the server announces its configured frame budget in hello", async () => {
  await using test = await startServer({ commandBurst: 7, commandsPerSecond: 3 });
  const client = test.connect();
  await client.hello();
  assert.deepEqual(client.link.limits, { burst: 7, perSecond: 3 });
});

Deno.test("a paced link never trips the server's rate limit, however fast it is asked", async () => {
  const clock = new ManualClock();
  // The server reads the same clock, so both sides agree on time.
  await using test = await startServer({ clock, commandBurst: 10, commandsPerSecond: 5 });
  const [clientEnd, serverEnd] = memoryPair();
  void test.server.handle(serverEnd);
  const link = new ServerLink(clientEnd, { clock, onEvent: () => {} });
  try {
    await link.hello();
    await link.request({ t: "user", name: "yoda" });
    const welcome = link.request({ t: "pass", password: "jedi", udpPort: 9000 });
    await settle();
    assert.equal((await welcome).ok, true);
    const replies = Promise.all(
      Array.from({ length: 40 }, (_, i) => link.request({ t: "cmd", line: `MSG ${i}` })),
    );
    await clock.advance(20_000);
    const codes = (await replies).map((reply) => reply.code ?? "ok");
    assert.deepEqual(codes, Array(40).fill("ok"));
    assert.equal(test.file("messagelog.txt").trimEnd().split("\n").length, 40);
  } finally {
    link.close();
  }
});
