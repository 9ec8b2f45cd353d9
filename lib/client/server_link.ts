/**
 * The client's end of the server connection: frames out and in, requests matched to replies
 * by id, server-pushed events, and heartbeats.
 */
import { encodeFrameText, FrameDecoder, FrameError } from "../shared/framing.ts";
import {
  type ClientFrame,
  decodeServerFrame,
  encodeFrame,
  type EventFrame,
  PROTOCOL_VERSION,
  ProtocolError,
  type ReplyCode,
  type ReplyData,
  type ServerFrame,
} from "../shared/protocol.ts";
import type { Connection } from "../shared/transport.ts";

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
  | { t: "cmd"; line: string }
  | { t: "passwd"; old: string; new: string }
  | { t: "answer"; ask: number; yes: boolean };

/** Thrown by `request` when the connection ends first. */
export class ConnectionLostError extends Error {
  constructor(message = "Connection to server lost") {
    super(message);
    this.name = "ConnectionLostError";
  }
}

/** Options for a link. */
export interface LinkOptions {
  onEvent: (event: EventFrame) => void;
  /** Heartbeat period; the server drops a session silent for 45 s. */
  heartbeatMs?: number;
  /** No frame at all from the server for this long means it is gone. */
  deadAfterMs?: number;
}

const AGENT = "toom-client/1.0.0";

/** The connection to the server. */
export class ServerLink {
  readonly #conn: Connection;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly #options: LinkOptions;
  readonly #pending = new Map<
    number,
    { lines: string[]; resolve: (reply: Reply) => void; reject: (error: Error) => void }
  >();
  #nextId = 1;
  #closed = false;
  #lastHeard = Date.now();
  #heartbeat: ReturnType<typeof setInterval> | undefined;
  #helloWaiter: { resolve: (server: string) => void; reject: (error: Error) => void } | undefined;
  /** Resolves with the reason once the connection has ended. */
  readonly closed: Promise<string>;
  #resolveClosed!: (reason: string) => void;

  constructor(conn: Connection, options: LinkOptions) {
    this.#conn = conn;
    this.#writer = conn.writable.getWriter();
    this.#options = options;
    this.closed = new Promise((resolve) => this.#resolveClosed = resolve);
    this.#readLoop();
  }

  /** Says hello and starts heartbeats; resolves with the server's agent string. */
  hello(): Promise<string> {
    const answer = new Promise<string>((resolve, reject) => {
      this.#helloWaiter = { resolve, reject };
    });
    this.#send({ t: "hello", v: PROTOCOL_VERSION, agent: AGENT });
    const period = this.#options.heartbeatMs ?? 15_000;
    const deadAfter = this.#options.deadAfterMs ?? 45_000;
    this.#heartbeat = setInterval(() => {
      if (Date.now() - this.#lastHeard > deadAfter) {
        this.close("Connection to server lost");
        return;
      }
      this.heartbeat();
    }, period);
    Deno.unrefTimer(this.#heartbeat as unknown as number);
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
      this.#pending.set(id, { lines: [], resolve, reject });
    });
    this.#send({ ...request, id } as ClientFrame);
    return reply;
  }

  /** Ends the connection; pending requests fail. */
  close(reason = "closed"): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#heartbeat);
    for (const waiter of this.#pending.values()) waiter.reject(new ConnectionLostError());
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

  #send(frame: ClientFrame): void {
    if (this.#closed) return;
    this.#writer.write(encodeFrameText(encodeFrame(frame))).catch(() =>
      this.close("Connection to server lost")
    );
  }

  async #readLoop(): Promise<void> {
    const decoder = new FrameDecoder();
    const reader = this.#conn.readable.getReader();
    let reason = "Connection to server lost";
    try {
      while (!this.#closed) {
        const { value, done } = await reader.read();
        if (done) break;
        this.#lastHeard = Date.now();
        for (const text of decoder.push(value)) this.#onFrame(decodeServerFrame(text));
      }
    } catch (error) {
      if (error instanceof FrameError || error instanceof ProtocolError) {
        reason = `Server sent a bad frame: ${error.message}`;
      }
    } finally {
      reader.releaseLock();
    }
    this.close(reason);
  }

  #onFrame(frame: ServerFrame): void {
    switch (frame.t) {
      case "hello":
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
