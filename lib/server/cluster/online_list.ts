/**
 * Who is online across the cluster (docs/CLUSTER.md): every node's sessions, in login
 * order, as the log's login, logout and node-lost proposals decided them (presence.ts). Every node
 * holds the same list, so each renders the same userlog.txt ({@linkcode renderUserLog}) and answers
 * `whoelse` and `ATU` for every node's users. It also holds the offline messages a login was handed
 * and whose delivery its node has not settled yet: they return with `put-back-mail`, or go with
 * `mail-delivered`, on every node alike.
 *
 * It changes only through {@linkcode OnlineList.arrive}, {@linkcode OnlineList.depart} and the
 * handed-mail methods, called in log order; nothing here reads a clock.
 *
 * @module
 */
import type { HandedMail, OnlineEntry, StoredMessage } from "../store/journal.ts";
import { type ActiveUser, userLogText } from "../user_log.ts";

/** The cluster's logged-in sessions, one per user, in login order. */
export class OnlineList {
  readonly #entries = new Map<string, OnlineEntry>();
  readonly #handed = new Map<string, Array<{ node: string; message: StoredMessage }>>();

  /** A list holding `entries` (in login order) and `handed` (a checkpoint's, checkpoint.ts). */
  constructor(state: { entries?: OnlineEntry[]; handed?: HandedMail[] } = {}) {
    for (const entry of state.entries ?? []) this.arrive(entry);
    for (const { to, node, message } of state.handed ?? []) this.hand(to, node, [message]);
  }

  /** Every handed message not yet settled, recipient by recipient in the order handed (copies). */
  get allHanded(): HandedMail[] {
    return [...this.#handed].flatMap(([to, held]) =>
      held.map(({ node, message }) => ({ to, node, message: { ...message } }))
    );
  }

  /** The sessions, oldest login first (copies). */
  get entries(): OnlineEntry[] {
    return [...this.#entries.values()].map((entry) => ({ ...entry }));
  }

  /** How many users are online. */
  get size(): number {
    return this.#entries.size;
  }

  /** The session of `user`, if online. */
  get(user: string): OnlineEntry | undefined {
    const entry = this.#entries.get(user);
    return entry && { ...entry };
  }

  /** The users whose sessions `node` holds, in login order. */
  usersOn(node: string): string[] {
    return [...this.#entries.values()].filter((entry) => entry.node === node).map((e) => e.user);
  }

  /** `entry` logs in: it goes last (a user already listed is replaced and moves last). */
  arrive(entry: OnlineEntry): void {
    this.#entries.delete(entry.user);
    this.#entries.set(entry.user, { ...entry });
  }

  /** `session` of `user` logs out; returns whether it was the current one (else nothing changes). */
  depart(user: string, session: string): boolean {
    if (this.#entries.get(user)?.session !== session) return false;
    this.#entries.delete(user);
    return true;
  }

  /** `messages` were handed to a login of `to` on `node`: kept until put back or delivered. */
  hand(to: string, node: string, messages: readonly StoredMessage[]): void {
    if (messages.length === 0) return;
    const held = this.#handed.get(to) ?? [];
    for (const message of messages) held.push({ node, message: { ...message } });
    this.#handed.set(to, held);
  }

  /** The messages handed to logins of `to` and not settled, oldest hand-out first (copies). */
  handed(to: string): StoredMessage[] {
    return (this.#handed.get(to) ?? []).map(({ message }) => ({ ...message }));
  }

  /** The ids of messages handed to logins on `node` and not settled, by recipient. */
  handedOn(node: string): Array<{ user: string; ids: number[] }> {
    const found = [];
    for (const [user, held] of this.#handed) {
      const ids = held.filter((hand) => hand.node === node).map((hand) => hand.message.id);
      if (ids.length > 0) found.push({ user, ids });
    }
    return found;
  }

  /** Takes the handed messages of `to` among `ids` out of the list, in the order handed. */
  settle(to: string, ids: readonly number[]): StoredMessage[] {
    const wanted = new Set(ids);
    const held = this.#handed.get(to) ?? [];
    const left = held.filter(({ message }) => !wanted.has(message.id));
    if (left.length > 0) this.#handed.set(to, left);
    else this.#handed.delete(to);
    return held.filter(({ message }) => wanted.has(message.id)).map(({ message }) => message);
  }
}

/** The sessions of `list` as userlog.txt and `ATU` show them, in login order. */
export function activeUsersOf(list: OnlineList): ActiveUser[] {
  return list.entries.map(({ user, loginTime, ip, udpPort }) => ({
    username: user,
    loginTime,
    ip,
    udpPort,
  }));
}

/**
 * userlog.txt's text for `list`: exactly the lines UserLog writes (lib/server/user_log.ts),
 * numbered in login order, the same on every node.
 */
export function renderUserLog(list: OnlineList): string {
  return userLogText(activeUsersOf(list));
}
