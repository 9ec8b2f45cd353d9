/**
 * A session is one connection with its buffers, timers and login progress; the account it
 * logs in as is just a name. Everything it sends goes through a bounded queue.
 */
import { encodeFrame, type ServerFrame } from "../shared/protocol.ts";
import { encodeFrameText } from "../shared/framing.ts";
import type { TokenBucket } from "../shared/token_bucket.ts";
import type { Address, Connection } from "../shared/transport.ts";

/** How far a session has got. */
export type Stage = "hello" | "username" | "password" | "register" | "active" | "closed";

/** Bytes a session may have waiting to be sent before it is dropped as a slow reader. */
export const DEFAULT_SEND_QUEUE_BYTES = 1024 * 1024;

/** One client connection. */
export class Session {
  stage: Stage = "hello";
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
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly #limit: number;
  #queue: Uint8Array[] = [];
  #queuedBytes = 0;
  #pumping = false;
  #closing = false;
  #closed = false;
  #onOverflow: (session: Session) => void;
  #drainWaiters: Array<{ below: number; resolve: () => void }> = [];

  constructor(
    readonly id: number,
    conn: Connection,
    options: {
      now: number;
      sendQueueBytes?: number;
      limiter: TokenBucket;
      onOverflow: (s: Session) => void;
    },
  ) {
    this.#conn = conn;
    this.#writer = conn.writable.getWriter();
    this.#limit = options.sendQueueBytes ?? DEFAULT_SEND_QUEUE_BYTES;
    this.lastHeard = options.now;
    this.lastActive = options.now;
    this.limiter = options.limiter;
    this.#onOverflow = options.onOverflow;
  }

  /** The peer's address as the server sees it. */
  get remote(): Address {
    return this.#conn.remoteAddr;
  }

  /** Whether the user has been logged out (the connection may still be open to say so). */
  get loggedOut(): boolean {
    return this.stage === "closed";
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
    return new Promise((resolve) => this.#drainWaiters.push({ below: bytes, resolve }));
  }

  #wakeDrainWaiters(): void {
    if (this.#drainWaiters.length === 0) return;
    const waiting = this.#drainWaiters;
    this.#drainWaiters = [];
    for (const waiter of waiting) {
      if (this.#closed || this.#queuedBytes < waiter.below) waiter.resolve();
      else this.#drainWaiters.push(waiter);
    }
  }

  /** Queues a frame; never waits for the peer. A session over its budget is dropped. */
  send(frame: ServerFrame): void {
    if (this.#closing || this.#closed) return;
    const bytes = encodeFrameText(encodeFrame(frame));
    if (this.#queuedBytes + bytes.length > this.#limit) {
      this.#onOverflow(this);
      return;
    }
    this.#queue.push(bytes);
    this.#queuedBytes += bytes.length;
    if (!this.#pumping) this.#pump();
  }

  /** Sends what is queued, then closes. */
  end(): void {
    this.#closing = true;
    if (!this.#pumping) this.close();
  }

  /** Closes now, dropping anything still queued. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#closing = true;
    this.#queue = [];
    this.#queuedBytes = 0;
    this.#wakeDrainWaiters();
    this.#writer.releaseLock();
    this.#conn.close();
  }

  async #pump(): Promise<void> {
    this.#pumping = true;
    try {
      while (this.#queue.length > 0 && !this.#closed) {
        const batch = this.#takeBatch();
        await this.#writer.write(batch);
        this.#queuedBytes -= batch.length;
        this.#wakeDrainWaiters();
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
    this.#queue = [];
    if (parts.length === 1) return parts[0]!;
    const size = parts.reduce((sum, part) => sum + part.length, 0);
    const batch = new Uint8Array(size);
    let offset = 0;
    for (const part of parts) {
      batch.set(part, offset);
      offset += part.length;
    }
    return batch;
  }
}
