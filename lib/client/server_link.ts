/**
 * The client's end of the server connection: frames out and in, requests matched to replies
 * by id, server-pushed events, heartbeats, the liveness deadline, and pacing: every frame waits
 * its turn in a token bucket inside the budget the server announced, so the server never has to
 * refuse one for rate. Time and timers come from an injected clock, so tests never sleep.
 */
import { type Clock, SYSTEM_CLOCK } from "../p2p/mod.ts";
import { encodeFrameText, FrameDecoder, FrameError } from "../shared/framing.ts";
import {
  type ClientFrame,
  decodeServerFrame,
  DEFAULT_FRAME_LIMITS,
  encodeFrame,
  type EventFrame,
  type FrameLimits,
  PROTOCOL_VERSION,
  ProtocolError,
  type ReplyCode,
  type ReplyData,
  type ServerFrame,
} from "../shared/protocol.ts";
import { TokenBucket } from "../shared/token_bucket.ts";
import { type Connection, TransportError } from "../shared/transport.ts";

/** A complete reply, its parts joined. */
export interface Reply {
  ok: boolean;
  lines: string[];
  code?: ReplyCode;
  data?: ReplyData;
}

/** Frames a request can be, without the id the link assigns. */
export type Request =
  | { t: "user"; name: string }
  | { t: "pass"; password: string; udpPort: number }
  | { t: "cmd"; line: string; ref?: string }
  | { t: "passwd"; old: string; new: string }
  | { t: "answer"; ask: number; yes: boolean };

/** Why a link ends when the server closes it, a write fails, or the server falls silent. */
export const CONNECTION_LOST = "Connection to server lost";

/** Thrown by `request` when the connection ends first. */
export class ConnectionLostError extends Error {
  /**
   * Whether the request had been handed to the connection: if so the server may have carried it
   * out; if not, it certainly did not, and sending it again on a new connection is safe.
   */
  readonly sent: boolean;

  constructor(message = CONNECTION_LOST, options: { sent?: boolean } = {}) {
    super(message);
    this.name = "ConnectionLostError";
    this.sent = options.sent ?? false;
  }
}

/** Options for a link. */
export interface LinkOptions {
  onEvent: (event: EventFrame) => void;
  /** Heartbeat period; the server drops a session silent for 45 s. */
  heartbeatMs?: number;
  /** No frame at all from the server for this long means it is gone. */
  deadAfterMs?: number;
  /** Time and timers for heartbeats, the liveness deadline and pacing (the runtime's by default). */
  clock?: Clock;
  /**
   * Whether frames are paced inside the server's budget (default true). Only a test driver that
   * must overrun the budget on purpose turns it off.
   */
  pace?: boolean;
}

const AGENT = "toom-client/1.0.0";
const HEARTBEAT_MS = 15_000;
const DEAD_AFTER_MS = 45_000;

/**
 * The share of the server's budget the link spends. The rest is a margin for frames that leave
 * evenly spaced but arrive bunched together (the server counts them as they arrive).
 */
const PACE_BURST_SHARE = 0.8;
const PACE_RATE_SHARE = 0.9;

/** The bucket a link paces with inside a server's budget, the safety margin taken off. */
export function pacingBucket(limits: FrameLimits, now: number): TokenBucket {
  return new TokenBucket(
    Math.max(1, Math.floor(limits.burst * PACE_BURST_SHARE)),
    limits.perSecond * PACE_RATE_SHARE,
    now,
  );
}

type TimerHandle = ReturnType<Clock["setTimeout"]>;

interface Waiter {
  lines: string[];
  /** Whether its frame has been handed to the connection. */
  sent: boolean;
  resolve: (reply: Reply) => void;
  reject: (error: Error) => void;
}

/** The connection to the server. */
export class ServerLink {
  readonly #conn: Connection;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly #options: LinkOptions;
  readonly #clock: Clock;
  readonly #pending = new Map<number, Waiter>();
  /** Frames waiting for a token, in the order they were sent. */
  readonly #outbox: Array<{ frame: ClientFrame; id?: number }> = [];
  /** The pacing bucket; undefined when pacing is off. */
  #bucket: TokenBucket | undefined;
  #limits: FrameLimits = DEFAULT_FRAME_LIMITS;
  #written = 0;
  #nextId = 1;
  #closed = false;
  #lastHeard: number;
  #heartbeat: TimerHandle | undefined;
  #deadline: TimerHandle | undefined;
  #paceTimer: TimerHandle | undefined;
  #helloWaiter: { resolve: (server: string) => void; reject: (error: Error) => void } | undefined;
  /** Resolves with the reason once the connection has ended (`CONNECTION_LOST` if it was lost). */
  readonly closed: Promise<string>;
  #resolveClosed!: (reason: string) => void;

  constructor(conn: Connection, options: LinkOptions) {
    this.#conn = conn;
    this.#writer = conn.writable.getWriter();
    this.#options = options;
    this.#clock = options.clock ?? SYSTEM_CLOCK;
    this.#lastHeard = this.#clock.now();
    if (options.pace !== false) this.#bucket = pacingBucket(DEFAULT_FRAME_LIMITS, this.#lastHeard);
    this.closed = new Promise((resolve) => this.#resolveClosed = resolve);
    this.#readLoop();
  }

  /** The frame budget the server announced in `hello` (the documented default until then). */
  get limits(): FrameLimits {
    return this.#limits;
  }

  /**
   * Says hello, starts heartbeats and the liveness deadline; resolves with the server's agent
   * string.
   */
  hello(): Promise<string> {
    const answer = new Promise<string>((resolve, reject) => {
      this.#helloWaiter = { resolve, reject };
    });
    this.#send({ t: "hello", v: PROTOCOL_VERSION, agent: AGENT });
    this.#scheduleHeartbeat();
    this.#lastHeard = this.#clock.now();
    this.#watch();
    return answer;
  }

  /** Sends a heartbeat now (the timer does this every period). */
  heartbeat(): void {
    this.#send({ t: "ping" });
  }

  /** Sends a request and resolves with its whole reply. */
  request(request: Request): Promise<Reply> {
    if (this.#closed) return Promise.reject(new ConnectionLostError());
    const id = this.#nextId++;
    const reply = new Promise<Reply>((resolve, reject) => {
      this.#pending.set(id, { lines: [], sent: false, resolve, reject });
    });
    this.#send({ ...request, id } as ClientFrame, id);
    return reply;
  }

  /** Ends the connection; pending requests fail. */
  close(reason = "closed"): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const timer of [this.#heartbeat, this.#deadline, this.#paceTimer]) {
      if (timer !== undefined) this.#clock.clearTimeout(timer);
    }
    this.#outbox.length = 0;
    for (const waiter of this.#pending.values()) {
      waiter.reject(new ConnectionLostError(CONNECTION_LOST, { sent: waiter.sent }));
    }
    this.#pending.clear();
    this.#helloWaiter?.reject(new ConnectionLostError());
    try {
      this.#writer.releaseLock();
    } catch {
      // A write is still in flight; closing the connection ends it.
    }
    this.#conn.close();
    this.#resolveClosed(reason);
  }

  #scheduleHeartbeat(): void {
    this.#heartbeat = this.#clock.setTimeout(() => {
      this.heartbeat();
      this.#scheduleHeartbeat();
    }, this.#options.heartbeatMs ?? HEARTBEAT_MS);
  }

  /** Arms the liveness deadline: the link is lost once the server has been silent for its span. */
  #watch(): void {
    const left = this.#lastHeard + (this.#options.deadAfterMs ?? DEAD_AFTER_MS) -
      this.#clock.now();
    if (left <= 0) return this.close(CONNECTION_LOST);
    // Frames that arrived meanwhile moved the deadline on; the timer just wakes up later.
    this.#deadline = this.#clock.setTimeout(() => this.#watch(), left);
  }

  /** Queues a frame; it goes out in order as soon as the pacing bucket has a token for it. */
  #send(frame: ClientFrame, id?: number): void {
    if (this.#closed) return;
    this.#outbox.push(id === undefined ? { frame } : { frame, id });
    this.#pump();
  }

  #pump(): void {
    if (this.#paceTimer !== undefined) return;
    while (this.#outbox.length > 0 && !this.#closed) {
      if (this.#bucket) {
        const now = this.#clock.now();
        const wait = this.#bucket.waitMs(now);
        if (wait > 0) {
          this.#paceTimer = this.#clock.setTimeout(() => {
            this.#paceTimer = undefined;
            this.#pump();
          }, wait);
          return;
        }
        this.#bucket.take(now);
      }
      const { frame, id } = this.#outbox.shift()!;
      const waiter = id === undefined ? undefined : this.#pending.get(id);
      if (waiter) waiter.sent = true;
      this.#written++;
      this.#writer.write(encodeFrameText(encodeFrame(frame))).catch(() =>
        this.close(CONNECTION_LOST)
      );
    }
  }

  /** Adopts the budget the server announced, counting what was sent before it arrived. */
  #adopt(limits: FrameLimits | undefined): void {
    this.#limits = limits ?? DEFAULT_FRAME_LIMITS;
    if (!this.#bucket) return;
    const now = this.#clock.now();
    this.#bucket = pacingBucket(this.#limits, now);
    for (let i = 0; i < this.#written; i++) this.#bucket.take(now);
  }

  async #readLoop(): Promise<void> {
    const decoder = new FrameDecoder();
    const reader = this.#conn.readable.getReader();
    let reason = CONNECTION_LOST;
    try {
      while (!this.#closed) {
        const { value, done } = await reader.read();
        if (done) break;
        this.#lastHeard = this.#clock.now();
        for (const text of decoder.push(value)) this.#onFrame(decodeServerFrame(text));
      }
    } catch (error) {
      if (error instanceof FrameError || error instanceof ProtocolError) {
        reason = `Server sent a bad frame: ${error.message}`;
      } else if (error instanceof TransportError) {
        reason = error.message;
      }
    } finally {
      reader.releaseLock();
    }
    this.close(reason);
  }

  #onFrame(frame: ServerFrame): void {
    switch (frame.t) {
      case "hello":
        this.#adopt(frame.limits);
        this.#helloWaiter?.resolve(frame.server);
        this.#helloWaiter = undefined;
        return;
      case "reply": {
        const waiter = this.#pending.get(frame.id);
        if (!waiter) return;
        waiter.lines.push(...frame.lines);
        if (frame.more) return;
        this.#pending.delete(frame.id);
        waiter.resolve({
          ok: frame.ok,
          lines: waiter.lines,
          ...(frame.code ? { code: frame.code } : {}),
          ...(frame.data ? { data: frame.data } : {}),
        });
        return;
      }
      case "event":
        this.#options.onEvent(frame);
        return;
      case "pong":
        return;
      case "error":
        // A shutdown is news, not an error; anything else is the server rejecting what we sent.
        this.#options.onEvent({
          t: "event",
          kind: "notice",
          lines: [frame.code === "shutdown" ? frame.text : `Server error: ${frame.text}`],
        });
        return;
    }
  }
}
