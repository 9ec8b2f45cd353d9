/**
 * Who has blocked whom, and the one rule every command asks: may `actor` reach `target`?
 * Blocks are one-way and last while the server runs.
 */

/** Block lists, keyed by the blocker. */
export class Relations {
  readonly #blocked = new Map<string, Set<string>>();

  /** `blocker` blocks `other`; false if it already had. */
  block(blocker: string, other: string): boolean {
    const set = this.#blocked.get(blocker) ?? new Set<string>();
    this.#blocked.set(blocker, set);
    if (set.has(other)) return false;
    set.add(other);
    return true;
  }

  /** `blocker` unblocks `other`; false if it had not blocked them. */
  unblock(blocker: string, other: string): boolean {
    return this.#blocked.get(blocker)?.delete(other) ?? false;
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
