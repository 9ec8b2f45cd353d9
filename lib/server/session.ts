/**
 * A session is one connection with its buffers, timers and login progress; the account it
 * logs in as is just a name. Everything it sends goes through a bounded queue.
 *
 * A server holds thousands of sessions, most of them idle, so a session is lean: plain fields,
 * methods rather than closures, one owner object shared by every session for what it reports,
 * and nothing allocated before it is needed.
 */
import { encodeFrame, type ServerFrame } from "../shared/protocol.ts";
import { encodeFrameText } from "../shared/framing.ts";
import type { TokenBucket } from "../shared/token_bucket.ts";
import type { Address, Connection } from "../shared/transport.ts";

/** How far a session has got. */
export type Stage = "hello" | "username" | "password" | "register" | "active" | "closed";

/** Reasons a logged-in session ends. */
export type EndReason = "out" | "lost" | "timeout" | "replaced" | "shutdown";

/** Bytes a session may have waiting to be sent before it is dropped as a slow reader. */
export const DEFAULT_SEND_QUEUE_BYTES = 1024 * 1024;

/** What sessions report to whoever keeps them (one object for all, not a closure each). */
export interface SessionOwner {
  /** The session's send queue went over its budget (the frame was not queued). */
  overflowed(session: Session): void;
  /** The session's stage changed. */
  staged(session: Session): void;
  /** The session began to end (`end` or `close`); called once. */
  ending(session: Session): void;
}

/** What `afterHeld` returns for a send that finished at once. */
const DONE: Promise<void> = Promise.resolve();

const NO_OWNER: SessionOwner = { overflowed() {}, staged() {}, ending() {} };

interface DrainWaiter {
  below: number;
  resolve: () => void;
}

/** One client connection. */
export class Session {
  /** The username being logged in (before `active`) or logged in as. */
  user = "";
  udpPort = 0;
  loginTime = 0;
  /** Last time any frame arrived (heartbeats count). */
  lastHeard: number;
  /** Last time the user issued a command (heartbeats do not count). */
  lastActive: number;
  /** The rate limit every frame of this session passes. */
  readonly limiter: TokenBucket;

  readonly #conn: Connection;
  readonly #limit: number;
  readonly #owner: SessionOwner;
  #stage: Stage = "hello";
  /** Encoded frames not yet written; a frame may be queued for other sessions too. */
  readonly #queue: Uint8Array[] = [];
  #queuedBytes = 0;
  #pumping = false;
  #closing = false;
  #closed = false;
  #drainWaiters: DrainWaiter[] | undefined;
  /** The session closed with bytes still queued. */
  #droppedUnwritten = false;
  /** Replies held back (inTurn), and the last of them. */
  #held = 0;
  #heldTail: Promise<void> = Promise.resolve();

  constructor(
    readonly id: number,
    conn: Connection,
    options: {
      now: number;
      sendQueueBytes?: number;
      limiter: TokenBucket;
      owner?: SessionOwner;
    },
  ) {
    this.#conn = conn;
    this.#limit = options.sendQueueBytes ?? DEFAULT_SEND_QUEUE_BYTES;
    this.lastHeard = options.now;
    this.lastActive = options.now;
    this.limiter = options.limiter;
    this.#owner = options.owner ?? NO_OWNER;
  }

  /** How far the session has got; its owner hears of every change. */
  get stage(): Stage {
    return this.#stage;
  }

  set stage(stage: Stage) {
    if (stage === this.#stage) return;
    this.#stage = stage;
    this.#owner.staged(this);
  }

  /** The peer's address as the server sees it. */
  get remote(): Address {
    return this.#conn.remoteAddr;
  }

  /** Whether the user has been logged out (the connection may still be open to say so). */
  get loggedOut(): boolean {
    return this.#stage === "closed";
  }

  /** Whether the session is closing or closed (nothing more will be sent). */
  get ending(): boolean {
    return this.#closing || this.#closed;
  }

  /** Bytes queued and not yet written. */
  get queuedBytes(): number {
    return this.#queuedBytes;
  }

  /** The send queue budget in bytes. */
  get sendQueueLimit(): number {
    return this.#limit;
  }

  /**
   * Resolves once fewer than `bytes` are queued, or the session closes. A long reply waits on
   * this between its parts, so it streams at the reader's pace instead of overflowing the queue.
   */
  whenBelow(bytes: number): Promise<void> {
    if (this.#queuedBytes < bytes || this.#closed) return Promise.resolve();
    return new Promise((resolve) => (this.#drainWaiters ??= []).push({ below: bytes, resolve }));
  }

  /** Whether a reply is held back until what it reports is committed (see `inTurn`). */
  get holding(): boolean {
    return this.#held > 0;
  }

  /**
   * Holds `send` back until every reply held before it has gone (then runs it, in a later
   * microtask even when none was held): a reply that waits for its change to be committed keeps
   * its place, while the session goes on reading frames.
   */
  inTurn(send: () => Promise<void> | void): Promise<void> {
    this.#held++;
    const run = this.#heldTail.then(send).catch(() => {}).finally(() => this.#held--);
    this.#heldTail = run;
    return run;
  }

  /** Runs `send` now, or after the replies held back for a commit when there are any. */
  afterHeld(send: () => Promise<void> | void): Promise<void> {
    if (this.#held > 0) return this.inTurn(send);
    // Every reply passes here: no promise is made for one that needs none.
    return send() ?? DONE;
  }

  /**
   * Resolves to true once everything queued so far has been written to the connection, or to
   * false if the session closed with some of it unwritten.
   */
  async flushed(): Promise<boolean> {
    await this.whenBelow(1);
    return !this.#droppedUnwritten;
  }

  #wakeDrainWaiters(): void {
    const waiting = this.#drainWaiters;
    if (waiting === undefined) return;
    this.#drainWaiters = undefined;
    for (const waiter of waiting) {
      if (this.#closed || this.#queuedBytes < waiter.below) waiter.resolve();
      else (this.#drainWaiters ??= []).push(waiter);
    }
  }

  /** Queues a frame; never waits for the peer. A session over its budget is dropped. */
  send(frame: ServerFrame): void {
    if (this.#closing || this.#closed) return;
    this.sendBytes(encodeFrameText(encodeFrame(frame)));
  }

  /**
   * Queues a frame already encoded (with its newline), as `send` does. The same bytes may be
   * queued for many sessions (an event to many users is encoded once); nothing changes them.
   */
  sendBytes(bytes: Uint8Array): void {
    if (this.#closing || this.#closed) return;
    if (this.#queuedBytes + bytes.length > this.#limit) {
      this.#owner.overflowed(this);
      return;
    }
    this.#queue.push(bytes);
    this.#queuedBytes += bytes.length;
    if (!this.#pumping) void this.#pump();
  }

  /** Sends what is queued, then closes. */
  end(): void {
    this.#beginEnding();
    if (!this.#pumping) this.close();
  }

  /** Closes now, dropping anything still queued. */
  close(): void {
    if (this.#closed) return;
    this.#beginEnding();
    this.#closed = true;
    if (this.#queuedBytes > 0) this.#droppedUnwritten = true;
    this.#queue.length = 0;
    this.#queuedBytes = 0;
    this.#wakeDrainWaiters();
    this.#conn.close();
  }

  #beginEnding(): void {
    if (this.#closing) return;
    this.#closing = true;
    this.#owner.ending(this);
  }

  /** Writes the queue out, in batches, until it is empty; a write may take several calls. */
  async #pump(): Promise<void> {
    this.#pumping = true;
    try {
      while (this.#queue.length > 0 && !this.#closed) {
        let batch = this.#takeBatch();
        while (batch.length > 0) {
          const written = await this.#conn.write(batch);
          if (this.#closed) return;
          if (written <= 0) throw new Deno.errors.WriteZero("Write wrote no bytes");
          this.#queuedBytes -= written;
          batch = batch.subarray(written);
          this.#wakeDrainWaiters();
        }
      }
    } catch {
      // The peer went away; the read side notices and ends the session.
      this.close();
    } finally {
      this.#pumping = false;
    }
    if (this.#closing) this.close();
  }

  #takeBatch(): Uint8Array {
    // Coalesce small frames into one write; the kernel does better with fewer, larger writes.
    const parts = this.#queue;
    if (parts.length === 1) return parts.pop()!;
    let size = 0;
    for (const part of parts) size += part.length;
    const batch = new Uint8Array(size);
    let offset = 0;
    for (const part of parts) {
      batch.set(part, offset);
      offset += part.length;
    }
    parts.length = 0;
    return batch;
  }
}
