/**
 * Direct messages waiting for recipients who are offline, oldest first, bounded per recipient and,
 * within that, per sender: one sender may hold only a fair share of a recipient's slots, so one
 * user cannot fill someone's mailbox and lock everybody else out of it. Every message is written
 * down (the store's journal) before its sender is told it will be delivered, and stays written down
 * until its recipient's connection has taken it.
 */
import type { Clock } from "../shared/clock.ts";
import { CommandError } from "../shared/errors.ts";
import { type Journal, type MailRecord, memoryJournal } from "./store/journal.ts";

/** One waiting message: who sent it, its display line, and the id its copies share. */
export type StoredMessage = Pick<MailRecord, "id" | "from" | "line" | "ref">;

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
  readonly #journal: Journal;
  readonly #clock: Clock;
  #nextId = 1;
  /** Messages one sender may have waiting for one recipient. */
  readonly perSender: number;

  constructor(readonly limit: number, options: MailboxOptions = {}) {
    this.perSender = options.perSender ?? DEFAULT_PER_SENDER;
    this.#journal = options.journal ?? memoryJournal;
    this.#clock = options.clock ?? { now: () => Date.now() };
    for (const { id, to, from, line, ref } of options.waiting ?? []) {
      this.#queue(to).push({ id, from, line, ref });
      this.#nextId = Math.max(this.#nextId, id + 1);
    }
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
    // A share as large as the whole queue is no share: the queue's own limit then speaks.
    const share = this.perSender;
    if (share < this.limit && this.countFrom(to, message.from) >= share) {
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
    const stored = { id: this.#nextId++, from: message.from, line: message.line };
    const record = {
      ...stored,
      to,
      ref: message.ref ?? newRef(stored.id),
      time: this.#clock.now(),
    };
    // It counts toward the limits at once, but is not handed out until it is written down.
    this.#queue(to).push({ ...stored, ref: record.ref });
    this.#unwritten.add(record.id);
    try {
      await this.#journal.record({ t: "mail", mail: record });
    } catch {
      const queue = this.#queues.get(to) ?? [];
      const index = queue.findIndex((waiting) => waiting.id === record.id);
      if (index >= 0) queue.splice(index, 1);
      if (queue.length === 0) this.#queues.delete(to);
      throw new CommandError("The server could not store the message; try again later.");
    } finally {
      this.#unwritten.delete(record.id);
    }
  }

  /**
   * Removes and returns everything waiting for `to`, oldest first, but messages not yet written
   * down (they wait for the next login). They stay written down until `delivered` says the
   * recipient's connection has them; `putBack` returns them if it never did.
   */
  take(to: string): StoredMessage[] {
    const queue = this.#queues.get(to) ?? [];
    this.#queues.delete(to);
    if (this.#unwritten.size === 0) return queue;
    // Messages still being written down stay: their senders have not been told anything yet.
    const ready = queue.filter((message) => !this.#unwritten.has(message.id));
    const left = queue.filter((message) => this.#unwritten.has(message.id));
    if (left.length > 0) this.#queues.set(to, left);
    return ready;
  }

  /**
   * Messages taken by `take` reached their recipient's connection: forgets them for good (noted:
   * until it is committed, a killed server would send them again, and the client drops the copies).
   */
  delivered(messages: StoredMessage[]): void {
    if (messages.length === 0) return;
    this.#journal.note({ t: "delivered", ids: messages.map((message) => message.id) });
  }

  /** Messages taken by `take` did not reach their recipient: they wait again, first in line. */
  putBack(to: string, messages: StoredMessage[]): void {
    if (messages.length === 0) return;
    this.#queues.set(to, [...messages, ...(this.#queues.get(to) ?? [])]);
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
