/**
 * The peer-to-peer broker, all in one place: tickets for UPD, the startprivate request and its
 * y/n answer, stopprivate, private sessions ended by a block or a logout, and requests that
 * expire unanswered. The server checks the rules and hands both peers a ticket (address and
 * fresh key); the data itself never passes through the server. It remembers the file tickets it
 * issued for a day, so that a `block` can revoke those the blocked user still holds: both clients
 * are told, and the blocker's engine refuses the transfer from then on.
 */
import { notEnabled, REFUSED } from "./broker_texts.ts";
import { issueTickets, safeBaseName, type Ticket } from "../p2p/mod.ts";
import { type Clock, systemClock } from "../shared/clock.ts";
import { UNSAFE_FILE_NAME } from "../shared/commands.ts";
import { hasUnsafeCharacters } from "../shared/display.ts";
import { CommandError } from "../shared/errors.ts";
import type { Logger } from "../shared/logger.ts";
import type { ServerEvent } from "../shared/protocol.ts";
import type { Relations } from "./relations.ts";
import { type Answer, type Notify, refusal } from "./replies.ts";
import type { Roster } from "./roster.ts";
import type { Session } from "./session.ts";

/** How long a private-messaging request waits for its y/n. */
export const ASK_TIMEOUT_MS = 60_000;

/**
 * How long the server remembers a file ticket it issued, so that a block can still revoke it. A
 * transfer has no deadline of its own, so this is long: a day covers 4 GiB at 50 KB/s.
 */
export const FILE_TICKET_MEMORY_MS = 24 * 60 * 60_000;

/** File tickets remembered per sender and receiver; beyond this the oldest are forgotten. */
export const FILE_TICKETS_PER_PAIR = 256;

/** A file ticket the server issued: which transfer, of what, and when. */
interface IssuedFile {
  ticketId: string;
  fileName: string;
  at: number;
}

/** Options of a {@linkcode Broker}. */
export interface BrokerOptions {
  /** The time source for how long file tickets are remembered (default: the system clock). */
  clock?: Clock;
  /**
   * Cluster mode: answers a request whose requester is on another node, through the cluster
   * (cluster/brokering.ts); every node then calls {@linkcode Broker.answered}.
   */
  answerAcross?: (ask: PendingAsk, yes: boolean) => Promise<Answer>;
}

/** A `startprivate` request waiting for the target's y/n. */
export interface PendingAsk {
  id: number;
  from: string;
  to: string;
  at: number;
}

/** The key of a sender and a receiver in the broker's memory of file tickets. */
function pairKey(from: string, to: string): string {
  return `${from}\n${to}`;
}

/** The event a user's peer gets when the user stops their private session `ticketId`. */
function stopEvent(user: string, ticketId: string): ServerEvent {
  return {
    kind: "private-stop",
    lines: [`${user} stopped private messaging with you`],
    data: { peer: user, ticketId },
  };
}

/** The UDP address of a logged-in session: its IP as the server sees it and its UDP port. */
function udpAddress(session: Session): { hostname: string; port: number } {
  return { hostname: session.remote.hostname, port: session.udpPort };
}

/** Private sessions between pairs of users, pending requests, and the rules around both. */
export class Broker {
  /** Ticket ids of private sessions, by user and peer (both directions). */
  readonly #pairs = new Map<string, Map<string, string>>();
  readonly #asks = new Map<number, PendingAsk>();
  /** The ids of the requests each user made or was asked, oldest first (a logout drops them). */
  readonly #asksOf = new Map<string, Set<number>>();
  /** The request waiting from one user to another, by `<from>\n<to>`. */
  readonly #askBetween = new Map<string, number>();
  #nextAsk = 1;
  /** File tickets issued, oldest first, by `<sender>\n<receiver>`. */
  readonly #files = new Map<string, IssuedFile[]>();
  readonly #clock: Clock;
  readonly #answerAcross: BrokerOptions["answerAcross"];

  constructor(
    readonly roster: Roster,
    readonly relations: Relations,
    readonly logger: Logger,
    options: BrokerOptions = {},
  ) {
    this.#clock = options.clock ?? systemClock;
    this.#answerAcross = options.answerAcross;
  }

  /**
   * `UPD <user> <filename>`: tickets for a direct file transfer (the client checked the file). A
   * name that would show differently from what it is (controls, escapes, bidi or zero-width
   * characters) is refused before anything else.
   */
  async upload(from: Session, to: string, file: string, notify: Notify): Promise<Answer> {
    if (hasUnsafeCharacters(file)) throw new CommandError(UNSAFE_FILE_NAME);
    const target = await this.#reachable(
      from.user,
      to,
      "send a file to",
      REFUSED.fileBlocked(to),
    );
    const fileName = safeBaseName(file);
    const [mine, theirs] = issueTickets({
      kind: "file",
      from: from.user,
      to,
      fileName,
      fromAddress: udpAddress(from),
      toAddress: udpAddress(target),
    });
    this.issuedFile(from.user, to, mine.id, fileName);
    notify(to, { kind: "ticket", lines: [], data: { ticket: theirs } });
    this.logger.info(`${from.user} is sending ${fileName} to ${to} over UDP.`);
    return { ok: true, lines: [], data: { ticket: mine } };
  }

  /** `startprivate <user>` (or `getaddress`): asks the target for consent. */
  async ask(from: string, to: string, now: number, notify: Notify): Promise<string[]> {
    await this.#reachable(
      from,
      to,
      "start private messaging with",
      REFUSED.privateBlocked(to),
    );
    this.checkFree(from, to);
    this.asked(from, to, now, notify);
    return [`Waiting for ${to} to accept private messaging...`];
  }

  /** Refuses a request from `from` to `to` if they message privately or one is waiting. */
  checkFree(from: string, to: string): void {
    if (this.between(from, to)) {
      throw new CommandError(`Private messaging with ${to} is already enabled.`);
    }
    if (this.#askBetween.has(pairKey(from, to))) {
      throw new CommandError(`Still waiting for ${to} to answer.`);
    }
  }

  /**
   * Records a request from `from` to `to` made at `at` and asks `to` (if `notify` reaches them):
   * for `ask`, and on every node of a cluster as it decides one (local_effects.ts).
   */
  asked(from: string, to: string, at: number, notify: Notify): void {
    if (this.#askBetween.has(pairKey(from, to))) return;
    const ask = { id: this.#nextAsk++, from, to, at };
    this.#addAsk(ask);
    notify(to, {
      kind: "ask",
      lines: [`${from} would like to private message, enter y or n:`],
      data: { ask: ask.id, from },
    });
    this.logger.info(`${from} asked ${to} for private messaging.`);
  }

  /** The target's y/n to request `askId`: on yes, both peers get their chat tickets. */
  answer(session: Session, askId: number, yes: boolean, notify: Notify): Answer | Promise<Answer> {
    const ask = this.#asks.get(askId);
    if (!ask || ask.to !== session.user) {
      return refusal("not-allowed", "That request is no longer waiting.");
    }
    this.#dropAsk(ask);
    const requester = this.roster.get(ask.from);
    if (this.#answerAcross && !requester) return this.#answerAcross(ask, yes);
    if (!requester || !this.relations.canReach(ask.from, ask.to)) {
      return refusal("failed", REFUSED.gone(ask.from));
    }
    const tickets = yes
      ? issueTickets({
        kind: "chat",
        from: ask.from,
        to: ask.to,
        fromAddress: udpAddress(requester),
        toAddress: udpAddress(session),
      })
      : null;
    if (tickets) this.logger.info(`${ask.from} and ${ask.to} started private messaging.`);
    this.answered(ask.from, ask.to, tickets, notify);
    return { ok: true, lines: [] };
  }

  /**
   * `to` answered `from`'s request (here, or as a cluster decided it: cluster/brokering.ts): the
   * request is dropped, and `from` is told of a no, or both get their chat ticket (`[for from,
   * for to]`) of a yes, each from the node holding them.
   */
  answered(from: string, to: string, tickets: [Ticket, Ticket] | null, notify: Notify): void {
    const id = this.#askBetween.get(pairKey(from, to));
    if (id !== undefined) this.#dropAsk(this.#asks.get(id)!);
    if (!tickets) {
      notify(from, {
        kind: "notice",
        lines: [`${to} declined private messaging`],
        data: { peer: to },
      });
      return;
    }
    this.#open(from, to, tickets[0].id);
    notify(to, {
      kind: "ticket",
      lines: [`Start private messaging with ${from}`],
      data: { ticket: tickets[1] },
    });
    notify(from, {
      kind: "ticket",
      lines: [`Start private messaging with ${to}`],
      data: { ticket: tickets[0] },
    });
  }

  /** `stopprivate <user>`: ends a private session; the peer is told. */
  stop(user: string, peer: string, notify: Notify): Answer {
    const ticketId = this.#close(user, peer);
    if (!ticketId) throw new CommandError(notEnabled(peer));
    notify(peer, stopEvent(user, ticketId));
    this.logger.info(`${user} stopped private messaging with ${peer}.`);
    return { ok: true, lines: [`Private messaging with ${peer} stopped`], data: { ticketId } };
  }

  /**
   * A cluster decided `user`'s stopprivate of session `ticketId` with `peer` (cluster/brokering.ts):
   * it ends here if it is still the one between them, and `peer` is told as by `stop`.
   */
  stopped(user: string, peer: string, ticketId: string, notify: Notify): void {
    if (this.between(user, peer) !== ticketId) return;
    this.#close(user, peer);
    notify(peer, stopEvent(user, ticketId));
  }

  /** Ends the private session between two users, if any, telling both (`why` may be ""). */
  endBetween(a: string, b: string, why: string, notify: Notify): void {
    const ticketId = this.#close(a, b);
    if (!ticketId) return;
    for (const [user, peer] of [[a, b], [b, a]] as const) {
      notify(user, {
        kind: "private-stop",
        lines: [`Private messaging with ${peer} ended${why ? ` (${why})` : ""}`],
        data: { peer, ticketId },
      });
    }
  }

  /** A user left: their private sessions end and their requests are dropped, peers told. */
  userLeft(user: string, notify: Notify): void {
    for (const [peer, ticketId] of this.#pairs.get(user) ?? []) {
      this.#close(user, peer);
      notify(peer, {
        kind: "private-stop",
        lines: [`Private messaging with ${user} ended (${user} logged out)`],
        data: { peer: user, ticketId },
      });
    }
    this.#pairs.delete(user);
    for (const id of this.#asksOf.get(user) ?? []) {
      const ask = this.#asks.get(id)!;
      this.#dropAsk(ask);
      if (ask.from !== user) this.#unanswered(ask, notify);
    }
  }

  /**
   * `blocker` blocked `blocked` (here, or on another node of a cluster): a private session between
   * them ends, without a reason (a blocked user is not told who blocked them), and the file tickets
   * `blocked` holds for sending to `blocker` are revoked (revokeFiles).
   */
  blocked(blocker: string, blocked: string, notify: Notify): void {
    this.endBetween(blocker, blocked, "", notify);
    this.revokeFiles(blocker, blocked, notify);
  }

  /**
   * `blocker` blocked `blocked`: the file tickets `blocked` got for sending to `blocker` are
   * revoked. Each side gets a `transfer-revoked` event per ticket: the blocker's client stops the
   * transfer (its engine refuses the ticket from then on and deletes a partial file), and the
   * sender's client stops sending. Returns how many tickets were revoked.
   */
  revokeFiles(blocker: string, blocked: string, notify: Notify): number {
    const key = pairKey(blocked, blocker);
    const files = this.#fresh(this.#files.get(key) ?? []);
    this.#files.delete(key);
    for (const { ticketId, fileName } of files) {
      notify(blocker, {
        kind: "transfer-revoked",
        lines: [`Stopped receiving ${fileName} from ${blocked}: you blocked ${blocked}.`],
        data: { peer: blocked, ticketId },
      });
      notify(blocked, {
        kind: "transfer-revoked",
        lines: [
          `Your file transfer of ${fileName} to ${blocker} was stopped: ${blocker} has blocked you.`,
        ],
        data: { peer: blocker, ticketId },
      });
    }
    if (files.length > 0) {
      this.logger.info(`${blocker} revoked ${files.length} file ticket(s) of ${blocked}.`);
    }
    return files.length;
  }

  /**
   * Remembers file ticket `ticketId` from `from` to `to` as issued now, so that a block can revoke
   * it: for `upload`, and on every node of a cluster as it decides one (local_effects.ts).
   */
  issuedFile(from: string, to: string, ticketId: string, fileName: string): void {
    this.#remember(from, to, { ticketId, fileName, at: this.#clock.now() });
  }

  /** The file tickets still remembered from `from` to `to`, oldest first (for tests). */
  fileTickets(from: string, to: string): string[] {
    return this.#fresh(this.#files.get(pairKey(from, to)) ?? []).map((f) => f.ticketId);
  }

  /**
   * Drops the requests asked before `before`, each requester told, and forgets the file tickets
   * older than {@linkcode FILE_TICKET_MEMORY_MS}.
   */
  expire(before: number, notify: Notify): void {
    // Called every second: nothing is allocated unless something expired.
    let expired: PendingAsk[] | undefined;
    for (const ask of this.#asks.values()) if (ask.at < before) (expired ??= []).push(ask);
    for (const ask of expired ?? []) {
      this.#dropAsk(ask);
      this.#unanswered(ask, notify);
    }
    const since = this.#clock.now() - FILE_TICKET_MEMORY_MS;
    for (const [key, files] of this.#files) {
      // Oldest first: when the oldest is still remembered, so is the rest.
      if (files[0] !== undefined && files[0].at > since) continue;
      const fresh = this.#fresh(files);
      if (fresh.length === 0) this.#files.delete(key);
      else if (fresh.length !== files.length) this.#files.set(key, fresh);
    }
  }

  /** The ticket id of the private session between `a` and `b`, if any. */
  between(a: string, b: string): string | undefined {
    return this.#pairs.get(a)?.get(b);
  }

  /** Checks the rules every brokered request shares and returns the target's session. */
  async #reachable(
    user: string,
    target: string,
    action: string,
    blockedMessage: string,
  ): Promise<Session> {
    await this.roster.requireOther(user, target, action);
    // The block is checked before presence, so a blocked user never learns the blocker is online.
    if (!this.relations.canReach(user, target)) throw new CommandError(blockedMessage);
    const session = this.roster.get(target);
    if (!session) throw new CommandError(REFUSED.offline(target));
    return session;
  }

  #remember(from: string, to: string, file: IssuedFile): void {
    const key = pairKey(from, to);
    const files = this.#fresh(this.#files.get(key) ?? []);
    files.push(file);
    this.#files.set(key, files.slice(-FILE_TICKETS_PER_PAIR));
  }

  /** The file tickets in `files` that are still remembered. */
  #fresh(files: IssuedFile[]): IssuedFile[] {
    const since = this.#clock.now() - FILE_TICKET_MEMORY_MS;
    return files.filter((f) => f.at > since);
  }

  #open(a: string, b: string, ticketId: string): void {
    for (const [x, y] of [[a, b], [b, a]] as const) {
      const peers = this.#pairs.get(x) ?? new Map<string, string>();
      peers.set(y, ticketId);
      this.#pairs.set(x, peers);
    }
  }

  #close(a: string, b: string): string | undefined {
    const id = this.between(a, b);
    this.#pairs.get(a)?.delete(b);
    this.#pairs.get(b)?.delete(a);
    return id;
  }

  #addAsk(ask: PendingAsk): void {
    this.#asks.set(ask.id, ask);
    this.#askBetween.set(pairKey(ask.from, ask.to), ask.id);
    for (const user of [ask.from, ask.to]) {
      const ids = this.#asksOf.get(user) ?? new Set<number>();
      ids.add(ask.id);
      this.#asksOf.set(user, ids);
    }
  }

  #dropAsk(ask: PendingAsk): void {
    this.#asks.delete(ask.id);
    this.#askBetween.delete(pairKey(ask.from, ask.to));
    for (const user of [ask.from, ask.to]) {
      const ids = this.#asksOf.get(user);
      ids?.delete(ask.id);
      if (ids?.size === 0) this.#asksOf.delete(user);
    }
  }

  #unanswered(ask: PendingAsk, notify: Notify): void {
    notify(ask.from, {
      kind: "notice",
      lines: [`${ask.to} did not answer the private messaging request`],
      data: { peer: ask.to },
    });
  }
}
