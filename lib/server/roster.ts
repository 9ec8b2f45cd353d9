/**
 * Who is online: one session per user, admission at login (the duplicate-login rule), departure
 * however it happens, presence notices, and when each user was last seen. It also answers whether
 * another user exists, the check every command about another user starts with.
 *
 * In cluster mode it holds this node's sessions: a login and a logout are proposed through the
 * cluster and the reply follows its outcome; the notices and userlog.txt follow on every node as it
 * decides them (cluster/local_effects.ts), and offline messages come with the login's outcome.
 */
import { setImmediate } from "node:timers";
import { type Cluster, InDoubtError } from "./cluster/cluster.ts";
import type { Outcome, Proposal } from "./cluster/proposals.ts";
import type { Clock } from "../shared/clock.ts";
import { CommandError, UnavailableError } from "../shared/errors.ts";
import type { Logger } from "../shared/logger.ts";
import type { Presence, ServerEvent, ServerFrame } from "../shared/protocol.ts";
import { type Answer, type Notify, refusal, refused } from "./replies.ts";
import type { EndReason, Session } from "./session.ts";
import type { StoredMessage } from "./store/journal.ts";
import type { Store } from "./store/store.ts";

const HOW: Record<EndReason, string> = {
  out: "logged out",
  lost: "lost connection",
  timeout: "timed out",
  replaced: "replaced",
  shutdown: "server shutdown",
};

/** What the roster works with. */
export interface RosterOptions {
  store: Pick<Store, "accounts" | "userLog" | "relations" | "mailbox" | "lastSeen" | "online">;
  clock: Clock;
  logger: Logger;
  /** A second login of an online user is refused, or replaces the first session. */
  duplicateLogin: "deny" | "replace";
  /** Called as a user leaves, after the presence notices (the broker ends their private sessions). */
  onLeave(user: string, notify: Notify): void;
  /** Cluster mode: logins and logouts are proposed through it. */
  cluster?: Cluster | undefined;
}

/** What a session replaced by a newer login is told. */
const REPLACED: ServerFrame = {
  t: "event",
  kind: "logout",
  lines: ["You have been logged out: logged in from another location"],
  data: { reason: "replaced" },
};

/**
 * What this node's sessions are told as they end because the cluster reported the node lost (it
 * lost its lease for too long): as a shutdown is told, so that a client shows it as news.
 */
export const LOST_PLACE: ServerFrame = {
  t: "error",
  code: "shutdown",
  text: "Connection closed: this server lost its place in the cluster; log in again",
};

/** The notice that `user` logged in or out, as every other user who may see it is told. */
export function presenceEvent(user: string, what: Presence): ServerEvent {
  return { kind: "presence", lines: [`${user} ${what}`], data: { user, what } };
}

/** A session's id across the cluster: its node's id and its own. */
function sessionRef(cluster: Cluster, session: Session): string {
  return `${cluster.node}/${session.id}`;
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
    const { cluster } = this.#options;
    if (cluster) return await this.#admitThrough(cluster, session, udpPort, notify);
    const user = session.user;
    const { clock } = this.#options;
    const { userLog, mailbox, lastSeen } = this.#options.store;
    const current = this.#online.get(user);
    if (current && current !== session) {
      if (this.#options.duplicateLogin === "deny") {
        session.stage = "username";
        return refusal("already-online", `${user} is already logged in`);
      }
      current.send(REPLACED);
      await this.leave(current, "replaced", notify);
      current.end();
    }
    const now = clock.now();
    this.#enter(session, udpPort, now);
    lastSeen.arrived(user, now);
    await userLog.add({ username: user, loginTime: now, ip: session.remote.hostname, udpPort });
    this.#options.logger.info(`${user} logged in`);
    this.#presence(user, "logged in", notify);
    this.#handOver(session, mailbox.take(user), notify);
    return { ok: true, lines: ["Welcome to TOOM!"], data: { user } };
  }

  /**
   * `admit` in cluster mode: the login is proposed, and decided in `seq` order with the
   * duplicate-login rule on every node; its outcome brings the offline messages handed to it.
   */
  async #admitThrough(
    cluster: Cluster,
    session: Session,
    udpPort: number,
    notify: Notify,
  ): Promise<Answer> {
    const user = session.user;
    const now = this.#options.clock.now();
    const ref = sessionRef(cluster, session);
    let outcome;
    try {
      outcome = await cluster.propose({
        t: "login",
        user,
        node: cluster.node,
        session: ref,
        ip: session.remote.hostname,
        udpPort,
        at: now,
        duplicate: this.#options.duplicateLogin,
      });
    } catch (error) {
      session.stage = "username";
      // Decided after all, once the database answers: this session never came in, so it leaves.
      if (error instanceof InDoubtError) {
        void error.late.then((late) => this.#undo(cluster, user, ref, late), () => {});
      }
      if (error instanceof CommandError) return refused(error);
      throw error;
    }
    if (!outcome.ok) {
      session.stage = "username";
      return refusal("already-online", outcome.reason);
    }
    if (this.#options.store.online.get(user)?.session !== ref) {
      // Logged out again before this node took it in: a later login replaced it, or this node
      // was reported lost (its handed mail went back then; putting it back again changes nothing).
      void this.#settle(cluster, user, outcome.messages, false);
      session.stage = "username";
      return refused(new UnavailableError());
    }
    if (session.ending) {
      // The connection closed while the login was decided: it leaves again at once.
      this.#undo(cluster, user, ref, outcome);
      return refusal("failed", "The connection closed.");
    }
    this.#enter(session, udpPort, now);
    this.#options.logger.info(`${user} logged in`);
    this.#handOver(session, outcome.messages, notify);
    return { ok: true, lines: ["Welcome to TOOM!"], data: { user } };
  }

  /**
   * A login the cluster admitted (`outcome`) whose session will not come in (it closed, or was told
   * the login failed): it logs out again at once, and the offline messages handed to it go back.
   */
  #undo(cluster: Cluster, user: string, ref: string, outcome: Outcome): void {
    if (!outcome.ok) return;
    const { messages } = outcome as Extract<Outcome<"login">, { ok: true }>;
    const at = this.#options.clock.now();
    void this.#propose(cluster, { t: "logout", user, session: ref, at, reason: "lost" });
    void this.#settle(cluster, user, messages, false);
  }

  /** `session` is logged in, as of `now`. */
  #enter(session: Session, udpPort: number, now: number): void {
    session.stage = "active";
    session.udpPort = udpPort;
    session.loginTime = now;
    session.lastActive = now;
    this.#online.set(session.user, session);
  }

  /** Queues the offline messages handed to a login, and settles them once its connection has. */
  #handOver(session: Session, messages: StoredMessage[], notify: Notify): void {
    for (const { from, line, ref } of messages) {
      notify(session.user, { kind: "message", lines: [line], data: { from, ref } });
    }
    if (messages.length > 0) void this.#confirmDelivery(session, messages);
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
    const { cluster } = this.#options;
    if (cluster) return this.#settle(cluster, session.user, messages, await session.flushed());
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
    const { cluster, clock } = this.#options;
    this.#options.logger.info(`${user} logged out (${HOW[reason]})`);
    if (cluster) {
      // Every node tells its own users, and rewrites its userlog, as it decides the logout.
      const at = clock.now();
      await this.#propose(cluster, {
        t: "logout",
        user,
        session: sessionRef(cluster, session),
        at,
        reason,
      });
    } else {
      this.#options.store.lastSeen.left(user, clock.now());
      // The userlog is up to date before anyone is told, so what they see matches the file.
      await this.#options.store.userLog.remove(user);
      this.#presence(user, "logged out", notify);
    }
    this.#options.onLeave(user, notify);
  }

  /**
   * Cluster mode: ends this node's session `ref` of `user`, which a login decided on some node
   * replaced; the cluster has logged it out already (and told everyone).
   */
  replacedInCluster(user: string, ref: string, notify: Notify): void {
    const { cluster } = this.#options;
    const session = this.#online.get(user);
    if (!cluster || !session || sessionRef(cluster, session) !== ref) return;
    this.#closeLoggedOut(user, session, REPLACED, HOW.replaced, notify);
  }

  /**
   * Cluster mode: ends every session this node holds, telling each {@linkcode LOST_PLACE}. The
   * cluster decided this node was lost, and has logged its users out everywhere already (and told
   * everyone).
   */
  lostInCluster(notify: Notify): void {
    // All leave at once: none of them is still here while the others' leaving is acted on.
    const sessions = [...this.#online];
    this.#online.clear();
    for (const [user, session] of sessions) {
      this.#closeLoggedOut(user, session, LOST_PLACE, "this node was reported lost", notify);
    }
  }

  /**
   * Ends `user`'s `session`, whom the cluster has logged out already (and told everyone): it is
   * sent `frame` and closed, and leaves this node's roster (`how` for the log).
   */
  #closeLoggedOut(
    user: string,
    session: Session,
    frame: ServerFrame,
    how: string,
    notify: Notify,
  ): void {
    session.send(frame);
    session.stage = "closed";
    this.#online.delete(user);
    this.#options.logger.info(`${user} logged out (${how})`);
    this.#options.onLeave(user, notify);
    session.end();
  }

  /** Settles offline messages handed to a login: delivered for good, or put back in line. */
  #settle(cluster: Cluster, user: string, messages: StoredMessage[], taken: boolean) {
    const ids = messages.map((message) => message.id);
    return this.#propose(
      cluster,
      taken ? { t: "mail-delivered", user, ids } : { t: "put-back-mail", user, ids },
    );
  }

  /** Proposes what needs no reply; a failure is logged (the node's lease covers a lost node). */
  async #propose(cluster: Cluster, proposal: Proposal): Promise<void> {
    try {
      await cluster.propose(proposal);
    } catch (error) {
      this.#options.logger.warn(`Proposing ${proposal.t} failed: ${String(error)}`);
    }
  }

  /**
   * Logs every user out at once, as the server stops: each logout is logged as by `leave`, the
   * userlog is emptied in one write, and no one is told (everyone is leaving; each connection is
   * told the server is shutting down). Private sessions and requests are dropped. The connections
   * themselves are closed by the caller. In cluster mode each logout is proposed, so the users of
   * other nodes are told as the cluster decides it.
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
    const sessions = [...this.#online];
    this.#online.clear();
    for (const [user] of sessions) onLeave(user, nobody);
    const { cluster } = this.#options;
    if (cluster) {
      // The other nodes see this node's users leave (this node's are gone: no one here is told).
      await Promise.all(
        sessions.map(([user, session]) =>
          this.#propose(cluster, {
            t: "logout",
            user,
            session: sessionRef(cluster, session),
            at: now,
            reason,
          })
        ),
      );
    }
    await userLog.reset();
  }

  /** Tells every other online user `<user> <what>`, except those `user` has blocked. */
  #presence(user: string, what: Presence, notify: Notify): void {
    // One event for every recipient, so that it can be encoded once.
    const event = presenceEvent(user, what);
    const { relations } = this.#options.store;
    for (const other of this.#online.keys()) {
      if (other !== user && relations.canReach(other, user)) notify(other, event);
    }
  }
}
