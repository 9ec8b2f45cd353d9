/**
 * Logins, logouts and lockouts as proposals (docs/CLUSTER.md): the rules decide() applies
 * to them (proposals.ts), and the changes to the cluster's online list (online_list.ts) they come
 * to. As everywhere in decide(), a rule reads the Store as the log left it and the proposal, never
 * a clock: every time in them is the proposal's own `at`.
 *
 * - `login` applies the duplicate-login rule against the cluster-wide list (deny: refused with the
 *   Roster's text; replace: the older session logs out first, and the outcome names its node),
 *   lists the session, and hands it the offline messages waiting, once across racing logins. They
 *   stay in the state tables until the session's node says `mail-delivered`, or returns them with
 *   `put-back-mail` (first in line again); a lost node's are returned by `node-lost`.
 * - `logout` ends a session only if it is still the user's current one (a replaced session's late
 *   logout changes nothing).
 * - `node-lost` logs out every user of a node that died.
 * - `fail-login` and `login-ok` count failed logins across nodes as LoginGuard does; decided while
 *   a lockout holds (the proposer had not applied it yet), they are refused and count nothing.
 *
 * Presence notices are data in the outcome ({@linkcode Notice}): every node delivers each to the
 * recipients whose sessions it holds.
 *
 * @module
 */
import { CommandError } from "../../shared/errors.ts";
import type { Presence } from "../../shared/protocol.ts";
import type { FailureOutcome } from "../lockout.ts";
import type { EndReason } from "../session.ts";
import type { Change, OnlineEntry, StoredMessage } from "../store/journal.ts";
import type { Store } from "../store/store.ts";
import type { RuleTable } from "./rule.ts";

/** The proposals about who is online, and about failed logins. */
export type PresenceProposal =
  /** A session whose password checked out, on `node`; `at` becomes its login time. */
  | {
    t: "login";
    user: string;
    node: string;
    session: string;
    ip: string;
    udpPort: number;
    at: number;
    duplicate: "deny" | "replace";
  }
  /** A session ended (`reason`, for the log); `at` becomes the user's last-seen time. */
  | { t: "logout"; user: string; session: string; at: number; reason: EndReason }
  /** Node `node` died: its users are logged out as of `at`. */
  | { t: "node-lost"; node: string; at: number }
  /** A wrong password for `user` at `at`. */
  | { t: "fail-login"; user: string; at: number }
  /** A right password for `user` at `at`: the failure count starts again. */
  | { t: "login-ok"; user: string; at: number }
  /** Messages handed to a login of `user` that never reached its connection: they wait again. */
  | { t: "put-back-mail"; user: string; ids: number[] }
  /** Messages handed to a login of `user` reached its connection: they are gone for good. */
  | { t: "mail-delivered"; user: string; ids: number[] };

/** A presence notice to deliver: `<user> <what>`, to `to` (each node to those it holds). */
export interface Notice {
  user: string;
  what: Presence;
  /** Online users who may see it (not `user`, none `user` has blocked), in login order. */
  to: string[];
}

/** A session by its node and id. */
export interface SessionRef {
  node: string;
  session: string;
}

/** What an accepted proposal of each of these kinds tells its proposer. */
export interface PresenceAccepted {
  /** The offline messages handed to this login, the session it replaced, the notices to send. */
  login: { messages: StoredMessage[]; replaced: SessionRef | null; presence: Notice[] };
  /** Whether the session was the current one (else nothing changed), and the notices. */
  logout: { left: boolean; presence: Notice[] };
  /** The users logged out, in login order, and the notices. */
  "node-lost": { users: string[]; presence: Notice[] };
  /**
   * As LoginGuard.recordFailure: locked on the N-th failure in a row; "blocked", and not counted,
   * while a lockout decided before it holds.
   */
  "fail-login": { result: FailureOutcome | "blocked" };
  /**
   * Whether there was a count to reset; `locked` when a lockout decided before it still holds
   * (the login is refused, as on the node that decided the lockout).
   */
  "login-ok": { changed: boolean; locked: boolean };
  /** How many messages went back (those already settled are skipped). */
  "put-back-mail": { returned: number };
  /** How many messages were forgotten. */
  "mail-delivered": { delivered: number };
}

/** A change to the cluster's online list (and the mail it was handed), applied in log order. */
export type OnlineChange =
  | { t: "arrive"; entry: OnlineEntry }
  | { t: "depart"; user: string; session: string }
  /** Messages `ids` waiting for `user` are handed to a login on `node`. */
  | { t: "hand-mail"; user: string; node: string; ids: number[] }
  /** Handed messages `ids` are settled: back in line first (`back`), or gone. */
  | { t: "settle-mail"; user: string; ids: number[]; back: boolean };

/** A change the presence rules make: to the online list, or a journal's Change. */
type PresenceChange = Change | OnlineChange;

/** The kinds of {@linkcode OnlineChange}, to tell them from a journal's Changes. */
const ONLINE_KINDS: ReadonlySet<string> = new Set(["arrive", "depart", "hand-mail", "settle-mail"]);

/** Whether `change` is an {@linkcode OnlineChange}. */
export function isOnlineChange(change: { t: string }): change is OnlineChange {
  return ONLINE_KINDS.has(change.t);
}

/** Applies an {@linkcode OnlineChange} to `store` (memory only: nothing is written down). */
export function applyOnlineChange(store: Store, change: OnlineChange): void {
  const { online, mailbox } = store;
  switch (change.t) {
    case "arrive":
      return online.arrive(change.entry);
    case "depart":
      return void online.depart(change.user, change.session);
    case "hand-mail": {
      // Out of the queue in memory; the state tables keep them until `mail-delivered`.
      const messages = mailbox.applyHanded(change.user, change.ids);
      return online.hand(change.user, change.node, messages);
    }
    case "settle-mail": {
      const messages = online.settle(change.user, change.ids);
      if (change.back) mailbox.putBack(change.user, messages);
    }
  }
}

/** The online users other than `user` who may see `user`'s presence, leaving out `except`. */
function recipients(store: Store, user: string, except: ReadonlySet<string> = new Set()) {
  return store.online.entries
    .map((entry) => entry.user)
    .filter((other) =>
      other !== user && !except.has(other) && store.relations.canReach(other, user)
    );
}

/** The changes that log out `user`'s session `session` as of `at`, as Roster.leave does. */
function departure(user: string, session: string, at: number): PresenceChange[] {
  return [{ t: "depart", user, session }, { t: "offline", user }, { t: "seen", user, time: at }];
}

/** `user`'s lockout record with a lockout over by `at` forgotten (a node may not have yet). */
function lockoutAt(store: Store, user: string, at: number) {
  const record = store.guard.recordOf(user);
  return { ...record, until: record.until > at ? record.until : 0 };
}

/** The handed messages of `user` among `ids`, as their settling changes (none if none). */
function settling(store: Store, user: string, ids: number[], back: boolean) {
  const wanted = new Set(ids);
  const found = store.online.handed(user).filter((message) => wanted.has(message.id));
  const settled = found.map((message) => message.id);
  const changes: PresenceChange[] = found.length > 0
    ? [{ t: "settle-mail", user, ids: settled, back }]
    : [];
  return { settled, changes };
}

/** One rule per kind of {@linkcode PresenceProposal}. */
export const PRESENCE_RULES: RuleTable<PresenceProposal, PresenceAccepted, PresenceChange> = {
  login(store, { user, node, session, ip, udpPort, at, duplicate }) {
    const current = store.online.get(user);
    const changes: PresenceChange[] = [];
    const presence: Notice[] = [];
    let replaced: SessionRef | null = null;
    const to = recipients(store, user);
    if (current && current.session !== session) {
      if (duplicate === "deny") throw new CommandError(`${user} is already logged in`);
      replaced = { node: current.node, session: current.session };
      changes.push(...departure(user, current.session, at));
      presence.push({ user, what: "logged out", to });
    }
    const entry = { user, node, session, ip, udpPort, loginTime: at };
    changes.push({ t: "arrive", entry }, { t: "online", user, time: at });
    presence.push({ user, what: "logged in", to });
    const messages = store.mailbox.ready(user);
    if (messages.length > 0) {
      changes.push({ t: "hand-mail", user, node, ids: messages.map((message) => message.id) });
    }
    return { accepted: { messages, replaced, presence }, changes };
  },
  logout(store, { user, session, at }) {
    if (store.online.get(user)?.session !== session) {
      return { accepted: { left: false, presence: [] }, changes: [] };
    }
    const presence: Notice[] = [{ user, what: "logged out", to: recipients(store, user) }];
    return { accepted: { left: true, presence }, changes: departure(user, session, at) };
  },
  "node-lost"(store, { node, at }) {
    const users = store.online.usersOn(node);
    const lost = new Set(users);
    const changes: PresenceChange[] = [];
    const presence: Notice[] = [];
    for (const user of users) {
      changes.push(...departure(user, store.online.get(user)!.session, at));
      presence.push({ user, what: "logged out", to: recipients(store, user, lost) });
    }
    for (const { user, ids } of store.online.handedOn(node)) {
      changes.push({ t: "settle-mail", user, ids, back: true });
    }
    return { accepted: { users, presence }, changes };
  },
  "fail-login"(store, { user, at }) {
    const { maxFailures, blockDurationMs } = store.guard;
    const record = lockoutAt(store, user, at);
    // The proposer checked the lockout before it had applied one another node decided first.
    if (record.until > 0) return { accepted: { result: "blocked" }, changes: [] };
    const failures = record.failures + 1;
    const [result, change]: [FailureOutcome, Change] = failures < maxFailures
      ? ["try-again", { t: "lockout", user, failures, until: record.until }]
      : ["locked", { t: "lockout", user, failures: 0, until: at + blockDurationMs }];
    return { accepted: { result }, changes: [change] };
  },
  "login-ok"(store, { user, at }) {
    const record = lockoutAt(store, user, at);
    // The proposer checked the lockout before it had applied one another node decided first.
    if (record.until > 0) return { accepted: { changed: false, locked: true }, changes: [] };
    if (record.failures === 0) return { accepted: { changed: false, locked: false }, changes: [] };
    return {
      accepted: { changed: true, locked: false },
      changes: [{ t: "lockout", user, failures: 0, until: record.until }],
    };
  },
  "put-back-mail"(store, { user, ids }) {
    const { settled, changes } = settling(store, user, ids, true);
    return { accepted: { returned: settled.length }, changes };
  },
  "mail-delivered"(store, { user, ids }) {
    const { settled, changes } = settling(store, user, ids, false);
    if (settled.length > 0) changes.push({ t: "delivered", ids: settled });
    return { accepted: { delivered: settled.length }, changes };
  },
};
