/**
 * The chat server core: it accepts connections, routes each frame through one table (with the
 * log-in guard and the activity update written once), dispatches commands to their handlers,
 * delivers replies and events, and runs the sweep. The rules live in the rooms it wires together:
 * login, roster, broker, the stores and the handlers. It never knows whether a connection is TCP
 * or in memory.
 */
import type { Clock } from "../shared/clock.ts";
import { parseArgs, readCommandLine } from "../shared/commands.ts";
import { encodeFrameText, FrameDecoder, FrameError, ReadBuffer } from "../shared/framing.ts";
import {
  type ClientFrame,
  decodeClientFrame,
  DEFAULT_FRAME_LIMITS,
  encodeFrame,
  type FrameLimits,
  PROTOCOL_VERSION,
  ProtocolError,
  type ServerFrame,
} from "../shared/protocol.ts";
import { TokenBucket } from "../shared/token_bucket.ts";
import { type Connection, isHangUp } from "../shared/transport.ts";
import { ASK_TIMEOUT_MS } from "./broker.ts";
import type { CommandContext, HandlerResult } from "./handlers/context.ts";
import { HANDLERS } from "./handlers/mod.ts";
import { FALLBACK_MAX_CONNECTIONS } from "./limits.ts";
import type { Login } from "./login.ts";
import {
  type Answer,
  type Delivery,
  EventEncoder,
  failure,
  type Notify,
  Outbox,
  refusal,
  replyInParts,
} from "./replies.ts";
import type { EndReason } from "./session.ts";
import { Session, type SessionOwner } from "./session.ts";
import { Admission } from "./admission.ts";
import {
  buildState,
  DEFAULT_PENDING_PER_IP,
  type ServerConfig,
  type ServerState,
} from "./state.ts";

/** The server's name and version, sent in `hello` and printed by `--version`. */
export const SERVER_AGENT = "toom-server/1.0.0";

const HEARTBEAT_TIMEOUT_MS = 45_000;
/** How long a stop waits for sessions to send what is queued before closing them. */
const CLOSE_GRACE_MS = 1_000;

/** How the server treats one type of client frame. */
interface FrameRoute<F extends ClientFrame> {
  /** Only a logged-in session may send it, and it counts as the user's activity. */
  loggedIn: boolean;
  handle(session: Session, frame: F): Promise<void> | void;
}

type FrameRoutes = { [T in ClientFrame["t"]]: FrameRoute<Extract<ClientFrame, { t: T }>> };

/** The chat server. */
export class ChatServer {
  readonly config: ServerConfig;
  /** Everything commands read and change. */
  readonly state: ServerState;
  readonly login: Login;
  readonly #sessions = new Set<Session>();
  /** Open and not-yet-logged-in connections, and the rules for a newcomer. */
  readonly #admission: Admission;
  readonly #running = new Set<Promise<void>>();
  #nextSessionId = 1;
  #closing = false;

  /** Every frame type, whether it needs a login, and who handles it. */
  readonly #routes: FrameRoutes = {
    hello: { loggedIn: false, handle: (session, frame) => this.#hello(session, frame.v) },
    ping: { loggedIn: false, handle: (session) => session.send({ t: "pong" }) },
    user: {
      loggedIn: false,
      handle: async (session, { id, name }) =>
        this.#respond(session, id, await this.login.user(session, name)),
    },
    pass: { loggedIn: false, handle: (session, frame) => this.#pass(session, frame) },
    cmd: { loggedIn: true, handle: (session, frame) => this.#command(session, frame) },
    passwd: { loggedIn: true, handle: (session, frame) => this.#passwd(session, frame) },
    answer: {
      loggedIn: true,
      handle: (session, { id, ask, yes }) =>
        this.#withEvents(
          session,
          id,
          (notify) => this.state.broker.answer(session, ask, yes, notify),
        ),
    },
  };

  /** Delivers an event at once, for what happens outside any command. */
  readonly #deliverNow: Notify = (to, event) => {
    const session = this.state.roster.get(to);
    if (session && !session.ending) session.sendBytes(this.#events.encode(event));
  };

  /** Encodes an event for many users once. */
  readonly #events = new EventEncoder();

  /** What every session reports: one object for all of them. */
  readonly #sessionOwner: SessionOwner = {
    overflowed: (session) => this.#drop(session, "Send queue exceeded"),
    staged: (session) => {
      if (session.stage === "active") this.#admission.loggedIn(session);
    },
    ending: (session) => this.#admission.ending(session),
  };

  /** Connections beyond this are closed at once. */
  readonly maxConnections: number;

  constructor(config: ServerConfig) {
    this.config = config;
    ({ state: this.state, login: this.login } = buildState(config, this.#deliverNow));
    this.maxConnections = config.maxConnections ?? FALLBACK_MAX_CONNECTIONS;
    this.#admission = new Admission({
      maxConnections: this.maxConnections,
      maxPendingPerIp: config.maxPendingPerIp ?? DEFAULT_PENDING_PER_IP,
      maxPendingLogins: config.maxPendingLogins ?? 512,
    }, {
      clock: config.clock,
      logger: config.logger,
      drop: (session, reason) => this.#drop(session, reason),
    });
  }

  /** Every session's frame budget, as `hello` announces it. */
  get #limits(): FrameLimits {
    return {
      burst: this.config.commandBurst ?? DEFAULT_FRAME_LIMITS.burst,
      perSecond: this.config.commandsPerSecond ?? DEFAULT_FRAME_LIMITS.perSecond,
    };
  }

  /** The clock everything reads. */
  get clock(): Clock {
    return this.config.clock;
  }

  /**
   * Writes the logs as a start has them (userlog.txt empty; messagelog.txt empty, or the kept
   * board), finishes account changes a killed run left, and reports credential problems.
   */
  async start(): Promise<void> {
    await this.state.store.start();
    await this.login.accounts.find("");
  }

  /** Connections open now. */
  get connectionCount(): number {
    return this.#sessions.size;
  }

  /** Serves one connection until it ends. Never throws. */
  handle(conn: Connection): Promise<void> {
    const run = this.#serve(conn).catch((error) => {
      // Whatever went wrong, it ends this one session, never the server.
      this.config.logger.warn(`Session ended by an unexpected error: ${String(error)}`);
      conn.close();
    });
    this.#running.add(run);
    return run.finally(() => this.#running.delete(run));
  }

  async #serve(conn: Connection): Promise<void> {
    if (this.#closing || !this.#admission.makeRoom()) {
      conn.close();
      return;
    }
    const now = this.clock.now();
    const session = new Session(this.#nextSessionId++, conn, {
      now,
      limiter: new TokenBucket(this.#limits.burst, this.#limits.perSecond, now),
      ...(this.config.sendQueueBytes ? { sendQueueBytes: this.config.sendQueueBytes } : {}),
      owner: this.#sessionOwner,
    });
    this.#sessions.add(session);
    this.#admission.admitted(session);
    const decoder = new FrameDecoder();
    // Small while the frames are: an idle connection holds it for its pending read.
    const buffer = new ReadBuffer();
    try {
      while (!session.ending) {
        const size = await conn.read(buffer.bytes);
        if (size === null) break;
        let frames: string[];
        try {
          frames = decoder.push(buffer.filled(size));
        } catch (error) {
          if (!(error instanceof FrameError)) throw error;
          session.send({ t: "error", code: error.code, text: error.message });
          session.end();
          break;
        }
        for (const text of frames) {
          if (session.ending) break;
          await this.#onFrame(session, text);
        }
      }
    } catch (error) {
      if (!isHangUp(error)) this.config.logger.warn(`Session ${session.id} failed: ${error}`);
    } finally {
      await this.#leave(session, "lost");
      session.end();
      this.#sessions.delete(session);
    }
  }

  #drop(session: Session, reason: string): void {
    if (session.ending) return;
    this.config.logger.warn(
      `Disconnecting session ${session.id}${session.user ? ` (${session.user})` : ""}: ${reason}`,
    );
    session.close();
  }

  #onFrame(session: Session, text: string): Promise<void> | void {
    const now = this.clock.now();
    session.lastHeard = now;
    let frame: ClientFrame;
    try {
      frame = decodeClientFrame(text);
    } catch (error) {
      if (!(error instanceof ProtocolError)) throw error;
      session.send({ t: "error", code: error.code, text: error.message });
      // A frame from a newer client is answered and skipped; garbage ends the session.
      if (error.code === "malformed") session.end();
      return;
    }
    if (session.stage === "hello" && frame.t !== "hello") {
      session.send({ t: "error", code: "hello-expected", text: "Send hello first" });
      session.end();
      return;
    }
    // One budget for every frame, so no kind of frame can be used to flood the server.
    if (!session.limiter.take(now)) {
      if ("id" in frame) {
        this.#respond(session, frame.id, refusal("rate-limited", "Too many commands; slow down."));
      }
      return;
    }
    const route = this.#routes[frame.t] as FrameRoute<ClientFrame>;
    if (route.loggedIn && "id" in frame) {
      if (session.stage !== "active") {
        return this.#respond(session, frame.id, refusal("not-allowed", "Please log in first."));
      }
      session.lastActive = now;
    }
    return route.handle(session, frame);
  }

  #hello(session: Session, version: number): void {
    if (version !== PROTOCOL_VERSION) {
      session.send({
        t: "error",
        code: "unsupported-version",
        text:
          `Protocol version ${version} is not supported; this server speaks ${PROTOCOL_VERSION}`,
      });
      session.end();
    } else if (session.stage === "hello") {
      session.stage = "username";
      // The frame budget is announced so that a client can pace itself inside it.
      session.send({ t: "hello", v: PROTOCOL_VERSION, server: SERVER_AGENT, limits: this.#limits });
    }
  }

  /** Answers a frame, after the replies still held back for a commit. */
  #respond(session: Session, id: number, answer: Answer): void {
    void session.afterHeld(() => session.send({ t: "reply", id, ...answer }));
  }

  /** Answers a frame, then delivers the events its work queued. */
  async #withEvents(
    session: Session,
    id: number,
    work: (notify: Notify) => Promise<Answer> | Answer,
  ): Promise<void> {
    const outbox = new Outbox();
    const answer = await work(outbox.notify);
    void session.afterHeld(() => {
      session.send({ t: "reply", id, ...answer });
      this.#deliver(outbox.take());
    });
  }

  #deliver(deliveries: Delivery[]): void {
    for (const { to, event } of deliveries) this.#deliverNow(to, event);
  }

  async #pass(session: Session, frame: Extract<ClientFrame, { t: "pass" }>): Promise<void> {
    const outcome = await this.login.pass(session, frame.password, frame.udpPort);
    if (outcome === "admit") {
      return this.#withEvents(
        session,
        frame.id,
        (notify) => this.state.roster.admit(session, frame.udpPort, notify),
      );
    }
    this.#respond(session, frame.id, outcome.answer);
    if (outcome.hangUp) session.end();
  }

  /**
   * `passwd`: answers; when a wrong old password locked the account, the user is logged out (as
   * by OUT) and told why, and the connection closes.
   */
  async #passwd(session: Session, frame: Extract<ClientFrame, { t: "passwd" }>): Promise<void> {
    const outcome = await this.login.passwd(session, frame.old, frame.new);
    this.#respond(session, frame.id, outcome.answer);
    if (!outcome.hangUp) return;
    await this.#logOutAfterHeld(session, "out", {
      t: "event",
      kind: "logout",
      lines: ["You have been logged out: your account is blocked for now"],
      data: { reason: "blocked" },
    });
  }

  /** After the replies held for a commit: tells why, logs the user out, closes the connection. */
  #logOutAfterHeld(session: Session, reason: EndReason, notice: ServerFrame): Promise<void> {
    return session.afterHeld(async () => {
      session.send(notice);
      await this.#leave(session, reason);
      session.end();
    });
  }

  /** Logs a session's user out, delivering what that tells others at once. */
  #leave(session: Session, reason: EndReason): Promise<void> {
    return this.state.roster.leave(session, reason, this.#deliverNow);
  }

  async #command(session: Session, frame: Extract<ClientFrame, { t: "cmd" }>): Promise<void> {
    const { id } = frame;
    const { spec, rest } = readCommandLine(frame.line);
    const handler = spec ? HANDLERS[spec.name] : undefined;
    if (!spec || !handler) {
      return this.#respond(session, id, refusal("invalid-command", "Error. Invalid command!"));
    }
    const outbox = new Outbox();
    const commits: Promise<unknown>[] = [];
    const context: CommandContext = {
      state: this.state,
      session,
      user: session.user,
      now: this.clock.now(),
      notify: outbox.notify,
      ...(frame.ref !== undefined ? { ref: frame.ref } : {}),
      afterCommit: (change) => {
        commits.push(change);
        // Its failure becomes the reply; nothing is left unhandled meanwhile.
        change.catch(() => {});
      },
    };
    const failed = (error: unknown) => failure(spec.name, session.user, error, this.config.logger);
    let result: HandlerResult;
    try {
      result = await handler(context, parseArgs(spec, rest));
    } catch (error) {
      return this.#respond(session, id, failed(error));
    }
    const { lines, data } = Array.isArray(result) ? { lines: result, data: undefined } : result;
    const reply = async () => {
      await replyInParts(session, id, lines, data);
      this.#deliver(outbox.take());
      // A handler that logged the user out (OUT) leaves the connection to close after the reply.
      if (session.loggedOut) session.end();
    };
    if (commits.length === 0 && !session.holding) return reply();
    // The reply waits for its changes to be committed; the session reads on meanwhile.
    void session.inTurn(async () => {
      try {
        await Promise.all(commits);
      } catch (error) {
        return session.send({ t: "reply", id, ...failed(error) });
      }
      await reply();
    });
  }

  /**
   * Ends sessions that went silent (no frame, not even a heartbeat, for 45 s) and, with
   * `--timeout`, users who issued no command for that long; drops private-messaging requests
   * left unanswered. Call it on a timer; tests call it after moving a fake clock.
   */
  async sweep(): Promise<void> {
    const now = this.clock.now();
    const silentFor = this.config.heartbeatTimeoutMs ?? HEARTBEAT_TIMEOUT_MS;
    const work: Promise<void>[] = [];
    for (const session of this.#sessions) {
      if (session.ending) continue;
      const idle = session.stage === "active" && this.config.inactivityMs > 0 &&
        now - session.lastActive >= this.config.inactivityMs;
      if (idle) {
        work.push(this.#logOutAfterHeld(session, "timeout", {
          t: "event",
          kind: "logout",
          lines: ["You have been logged out due to inactivity"],
          data: { reason: "timeout" },
        }));
      } else if (now - session.lastHeard >= silentFor) {
        this.#drop(session, `No heartbeat for ${Math.round(silentFor / 1000)} s`);
      }
    }
    this.state.broker.expire(now - ASK_TIMEOUT_MS, this.#deliverNow);
    await Promise.all(work);
  }

  /**
   * Stops: tells every connection the server is shutting down, logs every user out at once (as
   * by OUT, in one userlog write; no one is told of the others leaving, since everyone is), then
   * ends every session and waits for them. A session whose peer does not read what is queued is
   * closed after `closeGraceMs` (1 s) rather than holding up the stop.
   */
  async close(): Promise<void> {
    this.#closing = true;
    const sessions = [...this.#sessions];
    const notice = encodeFrameText(
      encodeFrame({ t: "error", code: "shutdown", text: "Server is shutting down" }),
    );
    for (const session of sessions) session.sendBytes(notice);
    await this.state.roster.leaveAll("shutdown");
    for (const session of sessions) session.end();
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      Promise.all([...this.#running]),
      new Promise((resolve) => {
        timer = setTimeout(resolve, this.config.closeGraceMs ?? CLOSE_GRACE_MS);
      }),
    ]);
    clearTimeout(timer);
    for (const session of this.#sessions) session.close();
    await Promise.all([...this.#running]);
    this.login.accounts.pool.close();
    await this.state.store.close();
  }
}
