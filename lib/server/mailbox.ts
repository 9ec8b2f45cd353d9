/**
 * Direct messages waiting for recipients who are offline, oldest first, bounded per recipient and,
 * within that, per sender: one sender may hold only a fair share of a recipient's slots, so one
 * user cannot fill someone's mailbox and lock everybody else out of it. Every message is written
 * down (the store's journal) before its sender is told it will be delivered, and stays written down
 * until its recipient's connection has taken it.
 */
import type { Clock } from "../shared/clock.ts";
import { CommandError } from "../shared/errors.ts";
import {
  type Journal,
  type MailRecord,
  memoryJournal,
  type StoredMessage,
} from "./store/journal.ts";

/** How many of one recipient's slots one sender may hold, unless configured otherwise. */
export const DEFAULT_PER_SENDER = 20;

/** Options of a {@linkcode Mailbox}. */
export interface MailboxOptions {
  /** Messages one sender may have waiting for one recipient (default 20). */
  perSender?: number;
  /** Where messages are written down (default: nowhere, memory only). */
  journal?: Journal;
  /** The messages waiting when the server started, oldest first. */
  waiting?: MailRecord[];
  /** The id the next message takes, if past those waiting (a cluster checkpoint's). */
  nextId?: number;
  clock?: Clock;
}

/**
 * A prefix of 8 random hex digits for this run: with a message's id after it, the id its copies
 * share (so a client shows a second copy once only), unlike any earlier run's, cheaply.
 */
const RUN_PREFIX = "o" +
  crypto.getRandomValues(new Uint32Array(1))[0]!.toString(16).padStart(8, "0");

/** The ref of message `id` stored in this run: `o` and 16 hex digits. */
function newRef(id: number): string {
  return RUN_PREFIX + (id % 2 ** 32).toString(16).padStart(8, "0");
}

/** Per-recipient queues of offline messages. */
export class Mailbox {
  readonly #queues = new Map<string, StoredMessage[]>();
  /** Ids of messages put and not yet written down. */
  readonly #unwritten = new Set<number>();
  /** Ids taken by `take` and not yet delivered or put back: a `mail` applied again stays out. */
  readonly #out = new Set<number>();
  /** When each message waiting or taken was stored, by id (a checkpoint holds it). */
  readonly #times = new Map<number, number>();
  readonly #journal: Journal;
  readonly #clock: Clock;
  #nextId = 1;
  /** Messages one sender may have waiting for one recipient. */
  readonly perSender: number;

  constructor(readonly limit: number, options: MailboxOptions = {}) {
    this.perSender = options.perSender ?? DEFAULT_PER_SENDER;
    this.#journal = options.journal ?? memoryJournal;
    this.#clock = options.clock ?? { now: () => Date.now() };
    for (const { id, to, from, line, ref, time } of options.waiting ?? []) {
      this.#queue(to).push({ id, from, line, ref });
      this.#times.set(id, time);
      this.#nextId = Math.max(this.#nextId, id + 1);
    }
    this.#nextId = Math.max(this.#nextId, options.nextId ?? 1);
  }

  #queue(to: string): StoredMessage[] {
    let queue = this.#queues.get(to);
    if (!queue) this.#queues.set(to, queue = []);
    return queue;
  }

  /**
   * Stores a message and resolves once it is written down; fails with a clear error once the
   * sender's share or the queue is full, or when it could not be written down (then it is not
   * kept: the sender must not be told it will be delivered).
   */
  async put(to: string, message: { from: string; line: string; ref?: string }): Promise<void> {
    this.checkRoom(to, message.from);
    const stored = { id: this.#nextId++, from: message.from, line: message.line };
    const record = {
      ...stored,
      to,
      ref: message.ref ?? newRef(stored.id),
      time: this.#clock.now(),
    };
    // It counts toward the limits at once, but is not handed out until it is written down.
    this.#queue(to).push({ ...stored, ref: record.ref });
    this.#times.set(record.id, record.time);
    this.#unwritten.add(record.id);
    try {
      await this.#journal.record({ t: "mail", mail: record });
    } catch {
      const queue = this.#queues.get(to) ?? [];
      const index = queue.findIndex((waiting) => waiting.id === record.id);
      if (index >= 0) queue.splice(index, 1);
      if (queue.length === 0) this.#queues.delete(to);
      this.#times.delete(record.id);
      throw new CommandError("The server could not store the message; try again later.");
    } finally {
      this.#unwritten.delete(record.id);
    }
  }

  /**
   * Throws the CommandError that refuses one more message from `from` to `to` (the sender's share
   * or the queue is full); returns if there is room. The one rule for `put` and cluster proposals
   * (lib/server/cluster/proposals.ts).
   */
  checkRoom(to: string, from: string): void {
    // A share as large as the whole queue is no share: the queue's own limit then speaks.
    const share = this.perSender;
    if (share < this.limit && this.countFrom(to, from) >= share) {
      const messages = share === 1 ? "message" : "messages";
      throw new CommandError(
        `You already have ${share} ${messages} waiting for ${to}; wait until they log in.`,
      );
    }
    if (this.count(to) >= this.limit) {
      throw new CommandError(
        `${to} has too many messages waiting (${this.limit}); try again after they log in.`,
      );
    }
  }

  /** The id the next message takes: past every message this mailbox has had. */
  get nextId(): number {
    return this.#nextId;
  }

  /**
   * What `take` would hand out for `to` now, oldest first, without taking it (copies): messages
   * neither being written down nor taken already.
   */
  ready(to: string): StoredMessage[] {
    return (this.#queues.get(to) ?? [])
      .filter((message) => !this.#unwritten.has(message.id))
      .map((message) => ({ ...message }));
  }

  /**
   * Applies a cluster's handing of messages `ids` waiting for `to` to a login: they leave `to`'s
   * queue and are forgotten here (as `applyDelivered` forgets them); returns copies of those
   * `ready` would have shown, oldest first. Only `to`'s queue is looked at.
   */
  applyHanded(to: string, ids: readonly number[]): StoredMessage[] {
    const handed = new Set(ids);
    const queue = this.#queues.get(to) ?? [];
    const ready = queue
      .filter((message) => handed.has(message.id) && !this.#unwritten.has(message.id))
      .map((message) => ({ ...message }));
    const left = queue.filter((message) => !handed.has(message.id));
    if (left.length > 0) this.#queues.set(to, left);
    else this.#queues.delete(to);
    for (const id of ids) {
      this.#out.delete(id);
      this.#times.delete(id);
    }
    return ready;
  }

  /**
   * Removes and returns everything waiting for `to`, oldest first, but messages not yet written
   * down (they wait for the next login). They stay written down until `delivered` says the
   * recipient's connection has them; `putBack` returns them if it never did.
   */
  take(to: string): StoredMessage[] {
    const queue = this.#queues.get(to) ?? [];
    this.#queues.delete(to);
    let ready = queue;
    if (this.#unwritten.size > 0) {
      // Messages still being written down stay: their senders have not been told anything yet.
      ready = queue.filter((message) => !this.#unwritten.has(message.id));
      const left = queue.filter((message) => this.#unwritten.has(message.id));
      if (left.length > 0) this.#queues.set(to, left);
    }
    for (const message of ready) this.#out.add(message.id);
    return ready;
  }

  /**
   * Messages taken by `take` reached their recipient's connection: forgets them for good (noted:
   * until it is committed, a killed server would send them again, and the client drops the copies).
   */
  delivered(messages: StoredMessage[]): void {
    if (messages.length === 0) return;
    for (const message of messages) {
      this.#out.delete(message.id);
      this.#times.delete(message.id);
    }
    this.#journal.note({ t: "delivered", ids: messages.map((message) => message.id) });
  }

  /** Messages taken by `take` did not reach their recipient: they wait again, first in line. */
  putBack(to: string, messages: StoredMessage[]): void {
    if (messages.length === 0) return;
    for (const message of messages) this.#out.delete(message.id);
    this.#queues.set(to, [...messages, ...(this.#queues.get(to) ?? [])]);
  }

  /**
   * Applies a `mail` change another node made (lib/server/store/replica.ts): the message waits
   * here too, with its id and ref, after those applied before it (the log's order is the order
   * they were put in), and this mailbox's own ids continue past it. It is not written down again,
   * and the limits are not checked again: its node checked them. A message already waiting, or
   * taken and not yet delivered, is not added twice.
   */
  applyMail({ id, to, from, line, ref, time }: MailRecord): void {
    this.#nextId = Math.max(this.#nextId, id + 1);
    if (this.#out.has(id) || this.#queues.get(to)?.some((message) => message.id === id)) return;
    this.#queue(to).push({ id, from, line, ref });
    this.#times.set(id, time);
  }

  /**
   * Applies a `delivered` change another node made: those messages reached their recipient
   * there, so they are gone here too (not written down again). Ids no longer here are skipped.
   */
  applyDelivered(ids: readonly number[]): void {
    const gone = new Set(ids);
    for (const id of ids) {
      this.#out.delete(id);
      this.#times.delete(id);
    }
    for (const [to, queue] of this.#queues) {
      const left = queue.filter((message) => !gone.has(message.id));
      if (left.length === queue.length) continue;
      if (left.length > 0) this.#queues.set(to, left);
      else this.#queues.delete(to);
    }
  }

  /**
   * Every message waiting, as stored, recipient by recipient in each queue's order (for a cluster
   * checkpoint: a mailbox built from them holds the same queues). Messages taken and not yet
   * delivered or put back are not waiting.
   */
  get waiting(): MailRecord[] {
    return [...this.#queues].flatMap(([to, queue]) =>
      queue.map(({ id, from, line, ref }) => ({
        id,
        to,
        from,
        line,
        ref,
        time: this.#times.get(id) ?? 0,
      }))
    );
  }

  /** How many messages wait for `to`. */
  count(to: string): number {
    return this.#queues.get(to)?.length ?? 0;
  }

  /** How many messages from `from` wait for `to`. */
  countFrom(to: string, from: string): number {
    let count = 0;
    for (const message of this.#queues.get(to) ?? []) if (message.from === from) count++;
    return count;
  }
}
