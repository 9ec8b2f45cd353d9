/**
 * Who has blocked whom, and the one rule every command asks: may `actor` reach `target`?
 * Blocks are one-way; each is written down (the store's journal) before the blocker is told.
 */
import { CommandError } from "../shared/errors.ts";
import { type Journal, memoryJournal } from "./store/journal.ts";

/** What a sender is told when the recipient of a direct message has blocked them. */
export const BLOCKED_MESSAGE =
  "Your message could not be delivered as the recipient has blocked you";

/** Block lists, keyed by the blocker. */
export class Relations {
  readonly #blocked = new Map<string, Set<string>>();
  readonly #journal: Journal;

  /** `blocks` are those in force when the server started. */
  constructor(
    options: { journal?: Journal; blocks?: Array<{ by: string; other: string }> } = {},
  ) {
    this.#journal = options.journal ?? memoryJournal;
    for (const { by, other } of options.blocks ?? []) this.#set(by).add(other);
  }

  #set(blocker: string): Set<string> {
    let set = this.#blocked.get(blocker);
    if (!set) this.#blocked.set(blocker, set = new Set());
    return set;
  }

  /**
   * `blocker` blocks `other`; resolves to false if it already had, once the block is written down.
   * A block that could not be written down is lifted again, and rejects with a CommandError.
   */
  async block(blocker: string, other: string): Promise<boolean> {
    const set = this.#set(blocker);
    if (set.has(other)) return false;
    set.add(other);
    try {
      await this.#journal.record({ t: "block", by: blocker, other });
    } catch {
      set.delete(other);
      throw new CommandError("The server could not save the block; try again later.");
    }
    return true;
  }

  /** `blocker` unblocks `other`; resolves to false if it had not blocked them. */
  async unblock(blocker: string, other: string): Promise<boolean> {
    if (!this.#blocked.get(blocker)?.delete(other)) return false;
    try {
      await this.#journal.record({ t: "unblock", by: blocker, other });
    } catch {
      this.#set(blocker).add(other);
      throw new CommandError("The server could not save the unblock; try again later.");
    }
    return true;
  }

  /**
   * Applies a `block` change another node made (lib/server/store/replica.ts): the block holds here
   * too, and is not written down again. Applying it twice is the same as once.
   */
  applyBlock(blocker: string, other: string): void {
    this.#set(blocker).add(other);
  }

  /** Applies an `unblock` change another node made, as `applyBlock` does a block. */
  applyUnblock(blocker: string, other: string): void {
    const set = this.#blocked.get(blocker);
    set?.delete(other);
    if (set?.size === 0) this.#blocked.delete(blocker);
  }

  /** Every block in force, blocker by blocker (for a cluster checkpoint). */
  get blocks(): Array<{ by: string; other: string }> {
    return [...this.#blocked].flatMap(([by, others]) =>
      [...others].map((other) => ({ by, other }))
    );
  }

  /** Whether `blocker` has blocked `other`. */
  hasBlocked(blocker: string, other: string): boolean {
    return this.#blocked.get(blocker)?.has(other) ?? false;
  }

  /**
   * The block rule: `actor` may message, broadcast to, send files to, start private messaging
   * with, and see in presence `target` unless `target` has blocked `actor`.
   */
  canReach(actor: string, target: string): boolean {
    return !this.hasBlocked(target, actor);
  }
}
