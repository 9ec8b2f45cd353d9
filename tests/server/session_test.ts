/**
 * Session's bounded send queue (lib/server/session.ts): partial writes, coalescing, the budget,
 * end and close, and what it reports to its owner.
 */
import assert from "node:assert/strict";
import { Session, type SessionOwner } from "../../lib/server/session.ts";
import { encodeFrameText } from "../../lib/shared/framing.ts";
import { TokenBucket } from "../../lib/shared/token_bucket.ts";
import type { Connection } from "../../lib/shared/transport.ts";

/** A connection whose writes wait to be let through, each writing at most `maxWrite` bytes. */
class HeldConnection implements Connection {
  readonly remoteAddr = { hostname: "127.0.0.1", port: 1 };
  /** Each write call's bytes (what it was offered), in order. */
  readonly offered: Uint8Array[] = [];
  /** What was written. */
  written = new Uint8Array(0);
  closed = false;
  #held: Array<() => void> = [];

  constructor(readonly maxWrite = Infinity) {}

  read(): Promise<number | null> {
    return Promise.resolve(null);
  }

  write(bytes: Uint8Array): Promise<number> {
    this.offered.push(bytes.slice());
    return new Promise((resolve, reject) => {
      this.#held.push(() => {
        if (this.closed) return reject(new Deno.errors.BadResource("closed"));
        const size = Math.min(this.maxWrite, bytes.length);
        const joined = new Uint8Array(this.written.length + size);
        joined.set(this.written);
        joined.set(bytes.subarray(0, size), this.written.length);
        this.written = joined;
        resolve(size);
      });
    });
  }

  /** Lets every write waiting now go through; resolves once the session has moved on. */
  async release(): Promise<void> {
    for (const go of this.#held.splice(0)) go();
    for (let i = 0; i < 3; i++) await Promise.resolve();
  }

  /** Lets writes through until none is waiting. */
  async drain(): Promise<void> {
    while (this.#held.length > 0) await this.release();
  }

  get text(): string {
    return new TextDecoder().decode(this.written);
  }

  get readable(): ReadableStream<Uint8Array> {
    throw new Error("The server must not make streams");
  }

  get writable(): WritableStream<Uint8Array> {
    throw new Error("The server must not make streams");
  }

  close(): void {
    this.closed = true;
    for (const go of this.#held.splice(0)) go();
  }
}

class RecordingOwner implements SessionOwner {
  readonly heard: string[] = [];
  overflowed(session: Session): void {
    this.heard.push(`overflowed ${session.id}`);
  }
  staged(session: Session): void {
    this.heard.push(`staged ${session.id} ${session.stage}`);
  }
  ending(session: Session): void {
    this.heard.push(`ending ${session.id}`);
  }
}

function session(
  conn: Connection,
  options: { sendQueueBytes?: number; owner?: SessionOwner } = {},
) {
  return new Session(1, conn, { now: 0, limiter: new TokenBucket(10, 10, 0), ...options });
}

const bytes = (text: string) => encodeFrameText(text);

Deno.test("Session writes a frame the connection takes a few bytes at a time, in order", async () => {
  const conn = new HeldConnection(4);
  const s = session(conn);
  s.send({ t: "pong" });
  s.sendBytes(bytes("second"));
  assert.equal(s.queuedBytes, 13 + 7);
  await conn.drain();
  assert.equal(conn.text, '{"t":"pong"}\nsecond\n');
  assert.equal(s.queuedBytes, 0);
  // Each call is offered what is left of its batch.
  assert.equal(new TextDecoder().decode(conn.offered[1]), ':"pong"}\n');
  s.close();
});

Deno.test("Session coalesces frames queued during a write into the next write", async () => {
  const conn = new HeldConnection();
  const s = session(conn);
  s.sendBytes(bytes("a"));
  s.sendBytes(bytes("b"));
  s.sendBytes(bytes("c"));
  await conn.drain();
  assert.deepEqual(conn.offered.map((part) => new TextDecoder().decode(part)), ["a\n", "b\nc\n"]);
  s.close();
});

Deno.test("Session counts written bytes off its queue as partial writes land", async () => {
  const conn = new HeldConnection(5);
  const s = session(conn);
  s.sendBytes(bytes("x".repeat(19)));
  assert.equal(s.queuedBytes, 20);
  let below = false;
  const waiting = s.whenBelow(12).then(() => below = true);
  await conn.release();
  assert.equal(s.queuedBytes, 15);
  assert.equal(below, false);
  await conn.release();
  assert.equal(s.queuedBytes, 10);
  await waiting;
  assert.equal(below, true);
  await conn.drain();
  s.close();
});

Deno.test("Session over its budget reports an overflow and does not queue the frame", async () => {
  const conn = new HeldConnection();
  const owner = new RecordingOwner();
  const s = session(conn, { sendQueueBytes: 10, owner });
  s.sendBytes(bytes("12345678"));
  s.sendBytes(bytes("1"));
  assert.equal(s.queuedBytes, 9);
  assert.deepEqual(owner.heard, ["overflowed 1"]);
  await conn.drain();
  assert.equal(conn.text, "12345678\n");
  s.close();
});

Deno.test("Session.end() sends what is queued, then closes; close() drops it", async () => {
  const conn = new HeldConnection(3);
  const owner = new RecordingOwner();
  const s = session(conn, { owner });
  s.sendBytes(bytes("bye now"));
  s.end();
  assert.equal(s.ending, true);
  s.sendBytes(bytes("too late"));
  await conn.drain();
  assert.equal(conn.text, "bye now\n");
  assert.equal(conn.closed, true);
  assert.deepEqual(owner.heard, ["ending 1"]);

  const other = new HeldConnection();
  const dropped = session(other, { owner });
  dropped.sendBytes(bytes("one"));
  dropped.sendBytes(bytes("two"));
  dropped.close();
  dropped.close();
  await other.drain();
  assert.equal(other.closed, true);
  assert.equal(dropped.queuedBytes, 0);
  assert.ok(!other.text.includes("two"));
  assert.deepEqual(owner.heard, ["ending 1", "ending 1"]);
});

Deno.test("Session closes when a write fails", async () => {
  const conn = new HeldConnection();
  conn.write = () => Promise.reject(new Deno.errors.BrokenPipe("gone"));
  const s = session(conn);
  s.sendBytes(bytes("x"));
  await conn.release();
  assert.equal(s.ending, true);
  assert.equal(conn.closed, true);
});

Deno.test("Session tells its owner of each stage change", () => {
  const owner = new RecordingOwner();
  const s = session(new HeldConnection(), { owner });
  s.stage = "username";
  s.stage = "username";
  s.stage = "active";
  assert.deepEqual(owner.heard, ["staged 1 username", "staged 1 active"]);
  s.close();
});

Deno.test("Session.sendBytes() queues the bytes it is given as they are, for any session", async () => {
  const shared = bytes('{"t":"event"}');
  const [one, two] = [new HeldConnection(), new HeldConnection()];
  const a = session(one);
  const b = session(two);
  a.sendBytes(shared);
  b.sendBytes(shared);
  assert.equal(one.offered.length, 1);
  await one.drain();
  await two.drain();
  assert.equal(one.text, '{"t":"event"}\n');
  assert.equal(two.text, '{"t":"event"}\n');
  assert.equal(new TextDecoder().decode(shared), '{"t":"event"}\n');
  a.close();
  b.close();
});
