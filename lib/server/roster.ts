/**
 * Who is online: one session per user, admission at login (the duplicate-login rule), departure
 * however it happens, presence notices, and when each user was last seen. It also answers whether
 * another user exists, the check every command about another user starts with.
 */
import { setImmediate } from "node:timers";
import type { Clock } from "../shared/clock.ts";
import { CommandError } from "../shared/errors.ts";
import type { Logger } from "../shared/logger.ts";
import type { Presence, ServerEvent } from "../shared/protocol.ts";
import type { StoredMessage } from "./mailbox.ts";
import { type Answer, type Notify, refusal } from "./replies.ts";
import type { Session } from "./session.ts";
import type { Store } from "./store/store.ts";

/** Reasons a logged-in session ends. */
export type EndReason = "out" | "lost" | "timeout" | "replaced" | "shutdown";

const HOW: Record<EndReason, string> = {
  out: "logged out",
  lost: "lost connection",
  timeout: "timed out",
  replaced: "replaced",
  shutdown: "server shutdown",
};

/** What the roster works with. */
export interface RosterOptions {
  store: Pick<Store, "accounts" | "userLog" | "relations" | "mailbox" | "lastSeen">;
  clock: Clock;
  logger: Logger;
  /** A second login of an online user is refused, or replaces the first session. */
  duplicateLogin: "deny" | "replace";
  /** Called as a user leaves, after the presence notices (the broker ends their private sessions). */
  onLeave(user: string, notify: Notify): void;
}

/** The online users and their sessions. */
export class Roster {
  readonly #online = new Map<string, Session>();
  readonly #options: RosterOptions;

  constructor(options: RosterOptions) {
    this.#options = options;
  }

  /** Logged-in sessions by username. */
  get online(): ReadonlyMap<string, Session> {
    return this.#online;
  }

  /** When each user who has left last left, for `whoelsesince`. */
  get lastSeen(): ReadonlyMap<string, number> {
    return this.#options.store.lastSeen.times;
  }

  /** The session of an online user. */
  get(user: string): Session | undefined {
    return this.#online.get(user);
  }

  /** Fails unless `other` is an existing account other than `user`. */
  async requireOther(user: string, other: string, action: string): Promise<void> {
    if (other === user) throw new CommandError(`You cannot ${action} yourself.`);
    if (!this.#online.has(other) && !await this.#options.store.accounts.find(other)) {
      throw new CommandError(`User ${other} does not exist.`);
    }
  }

  /**
   * Logs in a session whose password checked out: applies the duplicate-login rule, records the
   * user in userlog.txt, and queues the presence notices and the offline messages waiting.
   */
  async admit(session: Session, udpPort: number, notify: Notify): Promise<Answer> {
    const user = session.user;
    const { clock, logger } = this.#options;
    const { userLog, mailbox, lastSeen } = this.#options.store;
    const current = this.#online.get(user);
    if (current && current !== session) {
      if (this.#options.duplicateLogin === "deny") {
        session.stage = "username";
        return refusal("already-online", `${user} is already logged in`);
      }
      current.send({
        t: "event",
        kind: "logout",
        lines: ["You have been logged out: logged in from another location"],
        data: { reason: "replaced" },
      });
      await this.leave(current, "replaced", notify);
      current.end();
    }
    const now = clock.now();
    session.stage = "active";
    session.udpPort = udpPort;
    session.loginTime = now;
    session.lastActive = now;
    this.#online.set(user, session);
    lastSeen.arrived(user, now);
    await userLog.add({ username: user, loginTime: now, ip: session.remote.hostname, udpPort });
    logger.info(`${user} logged in`);
    this.#presence(user, "logged in", notify);
    const waiting = mailbox.take(user);
    for (const { from, line, ref } of waiting) {
      notify(user, { kind: "message", lines: [line], data: { from, ref } });
    }
    if (waiting.length > 0) void this.#confirmDelivery(session, waiting);
    return { ok: true, lines: ["Welcome to TOOM!"], data: { user } };
  }

  /**
   * Forgets offline messages for good once the recipient's connection has taken them (they were
   * written to it), or puts them back if it closed first. Until then they stay in the store, so a
   * server killed meanwhile delivers them again at the next login: the copies share their `ref`,
   * and a client does not show a second copy of a ref it has shown.
   */
  async #confirmDelivery(session: Session, messages: StoredMessage[]): Promise<void> {
    const { mailbox } = this.#options.store;
    // The events go out after the login's reply, which is sent once this turn's work is done.
    await new Promise((resolve) => setImmediate(resolve));
    if (await session.flushed()) {
      mailbox.delivered(messages);
    } else {
      mailbox.putBack(session.user, messages);
    }
  }

  /**
   * Logs a session's user out (userlog, presence, then `onLeave`) exactly once, whatever ended it.
   * The connection itself is closed by the caller.
   */
  async leave(session: Session, reason: EndReason, notify: Notify): Promise<void> {
    const wasActive = session.stage === "active";
    session.stage = "closed";
    const user = session.user;
    if (!wasActive || this.#online.get(user) !== session) return;
    this.#online.delete(user);
    this.#options.store.lastSeen.left(user, this.#options.clock.now());
    this.#options.logger.info(`${user} logged out (${HOW[reason]})`);
    // The userlog is up to date before anyone is told, so what they see matches the file.
    await this.#options.store.userLog.remove(user);
    this.#presence(user, "logged out", notify);
    this.#options.onLeave(user, notify);
  }

  /**
   * Logs every user out at once, as the server stops: each logout is logged as by `leave`, the
   * userlog is emptied in one write, and no one is told (everyone is leaving; each connection is
   * told the server is shutting down). Private sessions and requests are dropped. The connections
   * themselves are closed by the caller.
   */
  async leaveAll(reason: EndReason): Promise<void> {
    const { clock, logger, onLeave } = this.#options;
    const { userLog, lastSeen } = this.#options.store;
    const now = clock.now();
    const nobody: Notify = () => {};
    for (const [user, session] of this.#online) {
      session.stage = "closed";
      lastSeen.left(user, now);
      logger.info(`${user} logged out (${HOW[reason]})`);
    }
    const users = [...this.#online.keys()];
    this.#online.clear();
    for (const user of users) onLeave(user, nobody);
    await userLog.reset();
  }

  /** Tells every other online user `<user> <what>`, except those `user` has blocked. */
  #presence(user: string, what: Presence, notify: Notify): void {
    // One event for every recipient, so that it can be encoded once.
    const event: ServerEvent = {
      kind: "presence",
      lines: [`${user} ${what}`],
      data: { user, what },
    };
    const { relations } = this.#options.store;
    for (const other of this.#online.keys()) {
      if (other !== user && relations.canReach(other, user)) notify(other, event);
    }
  }
}
