/** Direct messages waiting for recipients who are offline, oldest first, bounded per user. */
import { CommandError } from "../shared/errors.ts";

/** One waiting message: its display line, its sender and the sender's id for it (if any). */
export interface StoredMessage {
  from: string;
  line: string;
  ref?: string;
}

/** Per-recipient queues of offline messages. */
export class Mailbox {
  readonly #queues = new Map<string, StoredMessage[]>();

  constructor(readonly limit: number) {}

  /** Stores a message; fails with a clear error once the recipient's queue is full. */
  put(to: string, message: StoredMessage): void {
    const queue = this.#queues.get(to) ?? [];
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
}
