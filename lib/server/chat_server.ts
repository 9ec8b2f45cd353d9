/**
 * The chat server core: sessions, login, the command dispatcher and delivery. It owns all
 * state and never knows whether a connection is TCP or in memory.
 */
import { AccountStore } from "./accounts.ts";
import type { Clock } from "../shared/clock.ts";
import { findCommand, parseArgs, splitCommand } from "../shared/commands.ts";
import {
  DEFAULT_HASH_COST,
  type HashCost,
  passwordProblem,
  usernameProblem,
} from "./credentials.ts";
import { CommandError, UsageError } from "../shared/errors.ts";
import type { TextFiles } from "./files.ts";
import { FrameDecoder, FrameError } from "../shared/framing.ts";
import { HANDLERS } from "./handlers/mod.ts";
import type { CommandContext, Delivery } from "./handlers/context.ts";
import { LoginGuard } from "./lockout.ts";
import type { Logger } from "../shared/logger.ts";
import { MessageBoard } from "./message_board.ts";
import {
  type ClientFrame,
  decodeClientFrame,
  type EventKind,
  PROTOCOL_VERSION,
  ProtocolError,
  type ReplyCode,
} from "../shared/protocol.ts";
import { Relations } from "./relations.ts";
import { Session } from "./session.ts";
import type { Connection } from "../shared/transport.ts";
import { UserLog } from "./user_log.ts";
import { Mailbox } from "./mailbox.ts";
import { issueTickets } from "../p2p/mod.ts";
import { PrivateSessions } from "./private_sessions.ts";
import { udpAddress } from "./handlers/p2p.ts";

/** The server's name and version, sent in `hello` and printed by `--version`. */
export const SERVER_AGENT = "toom-server/1.0.0";

/** What a server is configured with. Durations are milliseconds. */
export interface ServerConfig {
  maxFailures: number;
  blockDurationMs: number;
  /** Inactivity logout; 0 turns it off. */
  inactivityMs: number;
  allowRegister: boolean;
  duplicateLogin: "deny" | "replace";
  credentialsPath: string;
  userLogPath: string;
  messageLogPath: string;
  files: TextFiles;
  clock: Clock;
  logger: Logger;
  hashCost?: HashCost;
  /** A session silent this long is lost (heartbeats count). */
  heartbeatTimeoutMs?: number;
  sendQueueBytes?: number;
  /** Connections beyond this are refused. */
  maxConnections?: number;
  /** Connections not yet logged in beyond this push out the oldest such connection. */
  maxPendingLogins?: number;
  /** Command rate limit: a burst, refilled at `perSecond`. */
  commandBurst?: number;
  commandsPerSecond?: number;
  /** Offline messages kept per recipient. */
  mailboxLimit?: number;
}

/** Reasons a logged-in session ends, and what others see. */
export type EndReason = "out" | "lost" | "timeout" | "replaced" | "shutdown";

const HEARTBEAT_TIMEOUT_MS = 45_000;
/** How long a private-messaging request waits for its y/n. */
const ASK_TIMEOUT_MS = 60_000;
/** Characters of reply lines per frame (a frame holds up to 64 KiB of UTF-8). */
const REPLY_PART_CHARS = 16_000;

/** The chat server. */
export class ChatServer {
  readonly board: MessageBoard;
  readonly userLog: UserLog;
  readonly accounts: AccountStore;
  readonly guard: LoginGuard;
  readonly relations = new Relations();
  readonly mailbox: Mailbox;
  readonly privates = new PrivateSessions();
  /** Logged-in sessions by username. */
  readonly online = new Map<string, Session>();
  /** When each user last left, for `whoelsesince`. */
  readonly lastSeen = new Map<string, number>();
  readonly config: ServerConfig;
  readonly #sessions = new Set<Session>();
  readonly #running = new Set<Promise<void>>();
  #nextSessionId = 1;
  #closing = false;

  constructor(config: ServerConfig) {
    this.config = config;
    const writeFailed = (path: string) => (error: unknown) =>
      config.logger.warn(`Could not write ${path} (it is rewritten at the next change): ${error}`);
    this.board = new MessageBoard(config.files, config.messageLogPath, config.clock, {
      onWriteError: writeFailed(config.messageLogPath),
    });
    this.userLog = new UserLog(config.files, config.userLogPath, {
      onWriteError: writeFailed(config.userLogPath),
    });
    this.accounts = new AccountStore(
      config.files,
      config.credentialsPath,
      config.logger,
      config.hashCost ?? DEFAULT_HASH_COST,
    );
    this.guard = new LoginGuard(config.maxFailures, config.blockDurationMs, config.clock);
    this.mailbox = new Mailbox(config.mailboxLimit ?? 100);
  }

  /** The clock everything reads. */
  get clock(): Clock {
    return this.config.clock;
  }

  /** Empties both logs (the conference starts empty) and reports credential problems. */
  async start(): Promise<void> {
    await Promise.all([this.board.reset(), this.userLog.reset()]);
    await this.accounts.find("");
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
    if (this.#closing || this.#sessions.size >= (this.config.maxConnections ?? 4096)) {
      conn.close();
      return;
    }
    const session = new Session(this.#nextSessionId++, conn, {
      now: this.clock.now(),
      tokens: this.config.commandBurst ?? 100,
      ...(this.config.sendQueueBytes ? { sendQueueBytes: this.config.sendQueueBytes } : {}),
      onOverflow: (s) => this.#drop(s, "Send queue exceeded"),
    });
    this.#sessions.add(session);
    this.#limitPending();
    const decoder = new FrameDecoder();
    const reader = conn.readable.getReader();
    try {
      while (!session.ending) {
        const { value, done } = await reader.read();
        if (done) break;
        let frames: string[];
        try {
          frames = decoder.push(value);
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
      if (
        !(error instanceof Deno.errors.ConnectionReset ||
          error instanceof Deno.errors.BadResource ||
          error instanceof Deno.errors.Interrupted || error instanceof Deno.errors.BrokenPipe)
      ) {
        this.config.logger.warn(`Session ${session.id} failed: ${String(error)}`);
      }
    } finally {
      reader.releaseLock();
      await this.endSession(session, "lost");
      session.end();
      this.#sessions.delete(session);
    }
  }

  /** Keeps connections that have not logged in from crowding out those that will. */
  #limitPending(): void {
    const limit = this.config.maxPendingLogins ?? 512;
    const pending = [...this.#sessions].filter((s) => s.stage !== "active" && !s.ending);
    for (let i = 0; i < pending.length - limit; i++) {
      this.#drop(pending[i]!, "Too many connections waiting to log in");
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
    session.lastHeard = this.clock.now();
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
    if (!this.#takeToken(session, session.lastHeard)) {
      if ("id" in frame) {
        this.#reply(session, frame.id, false, ["Too many commands; slow down."], {
          code: "rate-limited",
        });
      }
      return;
    }
    switch (frame.t) {
      case "hello":
        if (frame.v !== PROTOCOL_VERSION) {
          session.send({
            t: "error",
            code: "unsupported-version",
            text:
              `Protocol version ${frame.v} is not supported; this server speaks ${PROTOCOL_VERSION}`,
          });
          session.end();
        } else if (session.stage === "hello") {
          session.stage = "username";
          session.send({ t: "hello", v: PROTOCOL_VERSION, server: SERVER_AGENT });
        }
        return;
      case "ping":
        session.send({ t: "pong" });
        return;
      case "user":
        return this.#onUser(session, frame);
      case "pass":
        return this.#onPass(session, frame);
      case "cmd":
        return this.#onCommand(session, frame);
      case "passwd":
        return this.#onPasswd(session, frame);
      case "answer":
        return this.#onAnswer(session, frame);
    }
  }

  #reply(
    session: Session,
    id: number,
    ok: boolean,
    lines: string[],
    extra: { code?: ReplyCode; data?: Record<string, unknown> } = {},
  ): void {
    session.send({ t: "reply", id, ok, lines, ...extra });
  }

  async #onUser(session: Session, frame: { id: number; name: string }): Promise<void> {
    if (session.stage === "active") {
      return this.#reply(session, frame.id, false, ["You are already logged in."], {
        code: "not-allowed",
      });
    }
    const name = frame.name.normalize("NFC");
    const problem = usernameProblem(name);
    const account = problem ? undefined : await this.accounts.find(name);
    if (account) {
      session.user = account.username;
      session.stage = "password";
      return this.#reply(session, frame.id, true, [], { data: { need: "password" } });
    }
    if (this.config.allowRegister) {
      if (problem) return this.#reply(session, frame.id, false, [`${problem}.`], { code: "usage" });
      session.user = name;
      session.stage = "register";
      return this.#reply(session, frame.id, true, ["This is a new user. Enter a password:"], {
        data: { need: "new-password" },
      });
    }
    session.stage = "username";
    this.#reply(session, frame.id, false, ["Username does not exist"], { code: "unknown-user" });
  }

  async #onPass(
    session: Session,
    frame: { id: number; password: string; udpPort: number },
  ): Promise<void> {
    const { id, password, udpPort } = frame;
    if (session.stage !== "password" && session.stage !== "register") {
      return this.#reply(session, id, false, ["Send a username first."], { code: "not-allowed" });
    }
    if (!Number.isInteger(udpPort) || udpPort < 0 || udpPort > 65535) {
      return this.#reply(session, id, false, [`Invalid UDP port: ${udpPort}`], { code: "usage" });
    }
    const user = session.user;
    if (session.stage === "register") {
      const problem = passwordProblem(password);
      if (problem) return this.#reply(session, id, false, [`${problem}.`], { code: "usage" });
      try {
        await this.accounts.register(user, password);
      } catch (error) {
        if (!(error instanceof CommandError)) throw error;
        session.stage = "username";
        return this.#reply(session, id, false, [`${error.message}.`], { code: "unknown-user" });
      }
      this.config.logger.info(`New account created: ${user}`);
      return this.#completeLogin(session, id, udpPort);
    }
    if (this.guard.isLocked(user)) {
      this.#reply(session, id, false, [
        "Your account is blocked due to multiple login failures. Please try again later",
      ], { code: "blocked" });
      return session.end();
    }
    const good = await this.accounts.check(user, password);
    if (session.ending) return;
    // The lockout may have started while the password was being checked.
    if (this.guard.isLocked(user)) {
      this.#reply(session, id, false, [
        "Your account is blocked due to multiple login failures. Please try again later",
      ], { code: "blocked" });
      return session.end();
    }
    if (!good) {
      if (this.guard.recordFailure(user) === "locked") {
        this.config.logger.info(`${user} blocked after ${this.config.maxFailures} failed login(s)`);
        this.#reply(session, id, false, [
          "Invalid Password. Your account has been blocked. Please try again later",
        ], { code: "locked" });
        return session.end();
      }
      return this.#reply(session, id, false, ["Invalid Password. Please try again"], {
        code: "bad-password",
      });
    }
    this.guard.recordSuccess(user);
    await this.#completeLogin(session, id, udpPort);
  }

  async #completeLogin(session: Session, id: number, udpPort: number): Promise<void> {
    const user = session.user;
    const current = this.online.get(user);
    if (current && current !== session) {
      if (this.config.duplicateLogin === "deny") {
        session.stage = "username";
        return this.#reply(session, id, false, [`${user} is already logged in`], {
          code: "already-online",
        });
      }
      current.send({
        t: "event",
        kind: "logout",
        lines: ["You have been logged out: logged in from another location"],
        data: { reason: "replaced" },
      });
      await this.endSession(current, "replaced");
      current.end();
    }
    const now = this.clock.now();
    session.stage = "active";
    session.udpPort = udpPort;
    session.loginTime = now;
    session.lastActive = now;
    this.online.set(user, session);
    await this.userLog.add({
      username: user,
      loginTime: now,
      ip: session.remote.hostname,
      udpPort,
    });
    this.config.logger.info(`${user} logged in`);
    this.#reply(session, id, true, ["Welcome to TOOM!"], { data: { user } });
    this.#presence(user, "logged in");
    for (const message of this.mailbox.take(user)) {
      session.send({
        t: "event",
        kind: "message",
        lines: [message.line],
        data: { from: message.from },
      });
    }
  }

  /** Tells every other online user `<user> <what>`, except those `user` has blocked. */
  #presence(user: string, what: string): void {
    for (const [other, session] of this.online) {
      if (other !== user && this.relations.canReach(other, user)) {
        session.send({
          t: "event",
          kind: "presence",
          lines: [`${user} ${what}`],
          data: { user, what },
        });
      }
    }
  }

  /**
   * Logs a session's user out (userlog, presence, private sessions) exactly once, whatever
   * ended it. The connection itself is closed by the caller.
   */
  async endSession(session: Session, reason: EndReason): Promise<void> {
    if (session.stage !== "active") {
      session.stage = "closed";
      return;
    }
    session.stage = "closed";
    const user = session.user;
    if (this.online.get(user) !== session) return;
    this.online.delete(user);
    this.lastSeen.set(user, this.clock.now());
    const how = {
      out: "logged out",
      lost: "lost connection",
      timeout: "timed out",
      replaced: "replaced",
      shutdown: "server shutdown",
    }[reason];
    this.config.logger.info(`${user} logged out (${how})`);
    // The userlog is up to date before anyone is told, so what they see matches the file.
    await this.userLog.remove(user);
    this.#presence(user, "logged out");
    for (const { peer, ticketId } of this.privates.closeAll(user)) {
      this.online.get(peer)?.send({
        t: "event",
        kind: "private-stop",
        lines: [`Private messaging with ${user} ended (${user} logged out)`],
        data: { peer: user, ticketId },
      });
    }
    for (const ask of this.privates.dropAsks(user)) {
      if (ask.from !== user) {
        this.online.get(ask.from)?.send({
          t: "event",
          kind: "notice",
          lines: [`${ask.to} did not answer the private messaging request`],
          data: { peer: ask.to },
        });
      }
    }
  }

  async #onCommand(session: Session, frame: { id: number; line: string }): Promise<void> {
    const { id } = frame;
    if (session.stage !== "active") {
      return this.#reply(session, id, false, ["Please log in first."], { code: "not-allowed" });
    }
    const now = this.clock.now();
    session.lastActive = now;
    const { word, rest } = splitCommand(frame.line);
    const spec = findCommand(word);
    const handler = spec ? HANDLERS[spec.name] : undefined;
    if (!spec || !handler) {
      return this.#reply(session, id, false, ["Error. Invalid command!"], {
        code: "invalid-command",
      });
    }
    const deliveries: Delivery[] = [];
    const context: CommandContext = {
      server: this,
      session,
      user: session.user,
      now,
      data: {},
      notify(to, kind: EventKind, lines, data) {
        deliveries.push({ to, kind, lines, ...(data ? { data } : {}) });
      },
    };
    let lines: string[];
    try {
      lines = await handler(context, parseArgs(spec, rest));
    } catch (error) {
      if (error instanceof UsageError || error instanceof CommandError) {
        return this.#reply(session, id, false, [error.message], {
          code: error instanceof UsageError ? "usage" : "failed",
        });
      }
      this.config.logger.warn(
        `Command "${spec.name}" from ${session.user} failed: ${String(error)}`,
      );
      return this.#reply(session, id, false, [`Error. ${spec.name} failed on the server.`], {
        code: "failed",
      });
    }
    await this.#replyInParts(session, id, lines, context.data);
    for (const delivery of deliveries) {
      this.online.get(delivery.to)?.send({
        t: "event",
        kind: delivery.kind,
        lines: delivery.lines,
        ...(delivery.data ? { data: delivery.data } : {}),
      });
    }
    // A handler that logged the user out (OUT) leaves the connection to close after the reply.
    if (session.loggedOut) session.end();
  }

  /**
   * Sends a long reply (RDM of a big board) as several frames, each well under the frame limit,
   * waiting for the queue to drain between them so a large but legitimate reply never trips the
   * slow-reader limit. Meanwhile this session's next frames wait; other sessions carry on.
   */
  async #replyInParts(
    session: Session,
    id: number,
    lines: string[],
    data: Record<string, unknown>,
  ): Promise<void> {
    const extra = Object.keys(data).length > 0 ? { data } : {};
    const roomFor = session.sendQueueLimit / 2;
    let part: string[] = [];
    let size = 0;
    for (const line of lines) {
      if (part.length > 0 && size + line.length > REPLY_PART_CHARS) {
        session.send({ t: "reply", id, ok: true, lines: part, more: true });
        await session.whenBelow(roomFor);
        part = [];
        size = 0;
      }
      part.push(line);
      size += line.length;
    }
    session.send({ t: "reply", id, ok: true, lines: part, ...extra });
  }

  #takeToken(session: Session, now: number): boolean {
    const burst = this.config.commandBurst ?? 100;
    const rate = this.config.commandsPerSecond ?? 50;
    session.tokens = Math.min(burst, session.tokens + ((now - session.tokensAt) / 1000) * rate);
    session.tokensAt = now;
    if (session.tokens < 1) return false;
    session.tokens -= 1;
    return true;
  }

  async #onPasswd(
    session: Session,
    frame: { id: number; old: string; new: string },
  ): Promise<void> {
    if (session.stage !== "active") {
      return this.#reply(session, frame.id, false, ["Please log in first."], {
        code: "not-allowed",
      });
    }
    session.lastActive = this.clock.now();
    const problem = passwordProblem(frame.new);
    if (problem) return this.#reply(session, frame.id, false, [`${problem}.`], { code: "usage" });
    try {
      await this.accounts.changePassword(session.user, frame.old, frame.new);
    } catch (error) {
      if (!(error instanceof CommandError)) throw error;
      return this.#reply(session, frame.id, false, [error.message], { code: "failed" });
    }
    this.config.logger.info(`${session.user} changed their password`);
    this.#reply(session, frame.id, true, ["Password changed."]);
  }

  #onAnswer(session: Session, frame: { id: number; ask: number; yes: boolean }): void {
    if (session.stage !== "active") {
      return this.#reply(session, frame.id, false, ["Please log in first."], {
        code: "not-allowed",
      });
    }
    session.lastActive = this.clock.now();
    const ask = this.privates.takeAsk(frame.ask, session.user);
    if (!ask) {
      return this.#reply(session, frame.id, false, ["That request is no longer waiting."], {
        code: "not-allowed",
      });
    }
    const requester = this.online.get(ask.from);
    if (!requester || !this.relations.canReach(ask.from, ask.to)) {
      return this.#reply(session, frame.id, false, [`${ask.from} is no longer available.`], {
        code: "failed",
      });
    }
    if (!frame.yes) {
      this.#reply(session, frame.id, true, []);
      requester.send({
        t: "event",
        kind: "notice",
        lines: [`${ask.to} declined private messaging`],
        data: { peer: ask.to },
      });
      return;
    }
    const [forRequester, forTarget] = issueTickets({
      kind: "chat",
      from: ask.from,
      to: ask.to,
      fromAddress: udpAddress(requester),
      toAddress: udpAddress(session),
    });
    this.privates.open(ask.from, ask.to, forRequester.id);
    this.config.logger.info(`${ask.from} and ${ask.to} started private messaging.`);
    this.#reply(session, frame.id, true, []);
    session.send({
      t: "event",
      kind: "ticket",
      lines: [`Start private messaging with ${ask.from}`],
      data: { ticket: forTarget },
    });
    requester.send({
      t: "event",
      kind: "ticket",
      lines: [`Start private messaging with ${ask.to}`],
      data: { ticket: forRequester },
    });
  }

  /** Ends the private session between two users, if any, telling both (`why` may be ""). */
  endPrivate(a: string, b: string, why: string): void {
    const ticketId = this.privates.close(a, b);
    if (!ticketId) return;
    for (const [user, peer] of [[a, b], [b, a]] as const) {
      this.online.get(user)?.send({
        t: "event",
        kind: "private-stop",
        lines: [`Private messaging with ${peer} ended${why ? ` (${why})` : ""}`],
        data: { peer, ticketId },
      });
    }
  }

  /**
   * Ends sessions that went silent (no frame, not even a heartbeat, for 45 s) and, with
   * `--timeout`, users who issued no command for that long. Call it on a timer; tests call it
   * after moving a fake clock.
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
        session.send({
          t: "event",
          kind: "logout",
          lines: ["You have been logged out due to inactivity"],
          data: { reason: "timeout" },
        });
        work.push(this.endSession(session, "timeout").then(() => session.end()));
      } else if (now - session.lastHeard >= silentFor) {
        this.#drop(session, `No heartbeat for ${Math.round(silentFor / 1000)} s`);
      }
    }
    for (const ask of this.privates.expireAsks(now - ASK_TIMEOUT_MS)) {
      this.online.get(ask.from)?.send({
        t: "event",
        kind: "notice",
        lines: [`${ask.to} did not answer the private messaging request`],
        data: { peer: ask.to },
      });
    }
    await Promise.all(work);
  }

  /** Stops: ends every session (they are logged out as by OUT) and waits for them. */
  async close(): Promise<void> {
    this.#closing = true;
    for (const session of this.#sessions) {
      session.send({ t: "error", code: "shutdown", text: "Server is shutting down" });
      await this.endSession(session, "shutdown");
      session.end();
    }
    await Promise.all([...this.#running]);
  }
}
