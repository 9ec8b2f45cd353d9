/**
 * Direct messages waiting for recipients who are offline, oldest first, bounded per recipient and,
 * within that, per sender: one sender may hold only a fair share of a recipient's slots, so one
 * user cannot fill someone's mailbox and lock everybody else out of it.
 */
import { CommandError } from "../shared/errors.ts";

/** One waiting message: its display line, its sender and the sender's id for it (if any). */
export interface StoredMessage {
  from: string;
  line: string;
  ref?: string;
}

/** How many of one recipient's slots one sender may hold, unless configured otherwise. */
export const DEFAULT_PER_SENDER = 20;

/** Options of a {@linkcode Mailbox}. */
export interface MailboxOptions {
  /** Messages one sender may have waiting for one recipient (default 20). */
  perSender?: number;
}

/** Per-recipient queues of offline messages. */
export class Mailbox {
  readonly #queues = new Map<string, StoredMessage[]>();
  /** Messages one sender may have waiting for one recipient. */
  readonly perSender: number;

  constructor(readonly limit: number, options: MailboxOptions = {}) {
    this.perSender = options.perSender ?? DEFAULT_PER_SENDER;
  }

  /** Stores a message; fails with a clear error once the sender's share or the queue is full. */
  put(to: string, message: StoredMessage): void {
    const queue = this.#queues.get(to) ?? [];
    // A share as large as the whole queue is no share: the queue's own limit then speaks.
    const share = this.perSender;
    if (share < this.limit && this.countFrom(to, message.from) >= share) {
      const messages = share === 1 ? "message" : "messages";
      throw new CommandError(
        `You already have ${share} ${messages} waiting for ${to}; wait until they log in.`,
      );
    }
    if (queue.length >= this.limit) {
      throw new CommandError(
        `${to} has too many messages waiting (${this.limit}); try again after they log in.`,
      );
    }
    queue.push(message);
    this.#queues.set(to, queue);
  }

  /** Removes and returns everything waiting for `to`, oldest first. */
  take(to: string): StoredMessage[] {
    const queue = this.#queues.get(to) ?? [];
    this.#queues.delete(to);
    return queue;
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
