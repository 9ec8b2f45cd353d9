/**
 * Who gets a connection: the connections open and those not yet logged in (overall and per
 * source address), counted as they come and go rather than by scanning every session, and the
 * rules that keep idle or not-yet-logged-in connections from crowding out real users.
 */
import type { Clock } from "../shared/clock.ts";
import type { Logger } from "../shared/logger.ts";
import type { Session } from "./session.ts";
import { addressKey, AddressThrottle } from "./throttle.ts";

/** The limits admission applies. */
export interface AdmissionLimits {
  /** Connections open at once. */
  maxConnections: number;
  /** Connections not logged in per source address; 0 = no limit. */
  maxPendingPerIp: number;
  /** Connections not logged in overall. */
  maxPendingLogins: number;
}

/** Open and pending connections, and the rules for a newcomer. */
export class Admission {
  #open = 0;
  /** Connections not logged in and not ending, oldest first, with their address key. */
  readonly #pending = new Map<Session, string>();
  /** The same, by source address (`addressKey`), oldest first. */
  readonly #pendingByAddress = new Map<string, Set<Session>>();
  /** One log line per minute about refused connections, overall and per address. */
  readonly #reports: AddressThrottle;

  constructor(
    readonly limits: AdmissionLimits,
    readonly options: {
      clock: Clock;
      logger: Logger;
      /** Disconnects a session, logging why. */
      drop: (session: Session, reason: string) => void;
    },
  ) {
    this.#reports = new AddressThrottle({ limit: 1, windowMs: 60_000 }, options.clock);
  }

  /**
   * Whether a new connection fits under `maxConnections`. When it would not, the oldest
   * connection not yet logged in makes way for it (so idle connections cannot keep users out);
   * when every connection is a logged-in user, it does not fit, and that is logged.
   */
  makeRoom(): boolean {
    const { maxConnections } = this.limits;
    if (this.#open < maxConnections) return true;
    const oldestPending = this.#pending.keys().next().value;
    if (!oldestPending) {
      if (this.#reports.shouldReport("too many connections")) {
        this.options.logger.warn(
          `Refusing connections: ${maxConnections} users logged in (--max-connections)`,
        );
      }
      return false;
    }
    if (this.#reports.shouldReport("connections full")) {
      this.options.logger.warn(
        `${maxConnections} connections open (--max-connections): closing the oldest of ` +
          "those not logged in to make room",
      );
    }
    oldestPending.close();
    return true;
  }

  /**
   * Counts a new session as open and pending, then keeps connections that have not logged in
   * from crowding out those that will: beyond the limit per source address a new one pushes out
   * that address's oldest, and beyond the overall limit the oldest of all. So one address cannot
   * push out everyone else's logins.
   */
  admitted(newcomer: Session): void {
    this.#open++;
    const key = addressKey(newcomer.remote.hostname);
    this.#pending.set(newcomer, key);
    let mine = this.#pendingByAddress.get(key);
    if (mine) mine.add(newcomer);
    else this.#pendingByAddress.set(key, mine = new Set([newcomer]));
    const perIp = this.limits.maxPendingPerIp;
    if (perIp > 0 && mine.size > perIp) {
      if (this.#reports.shouldReport(key)) {
        this.options.logger.warn(
          `Closing connections waiting to log in from ${key}: over ${perIp} at once`,
        );
      }
      // Closing one takes it out of the set (see `notPending`), oldest first.
      for (const session of mine) {
        if (mine.size <= perIp) break;
        session.close();
      }
    }
    for (const session of this.#pending.keys()) {
      if (this.#pending.size <= this.limits.maxPendingLogins) break;
      this.options.drop(session, "Too many connections waiting to log in");
    }
  }

  /** A session logged in: it no longer counts as pending. */
  loggedIn(session: Session): void {
    this.#notPending(session);
  }

  /** A session began to end: it no longer counts at all. */
  ending(session: Session): void {
    this.#open--;
    this.#notPending(session);
  }

  #notPending(session: Session): void {
    const key = this.#pending.get(session);
    if (key === undefined) return;
    this.#pending.delete(session);
    const mine = this.#pendingByAddress.get(key);
    mine?.delete(session);
    if (mine?.size === 0) this.#pendingByAddress.delete(key);
  }
}
