/**
 * A bounded memory of the ids seen lately, so a message that arrives twice (a private message
 * relayed through the server whose direct copy arrives after all) is shown once.
 */

/** Remembers the last `limit` ids; the oldest is forgotten first. */
export class RecentIds {
  readonly #seen = new Set<string>();

  constructor(readonly limit = 1000) {}

  /** Remembers `id`; false when it was remembered already (a second copy). */
  firstTime(id: string): boolean {
    if (this.#seen.has(id)) return false;
    this.#seen.add(id);
    if (this.#seen.size > this.limit) this.#seen.delete(this.#seen.values().next().value!);
    return true;
  }

  /** Whether `id` is remembered. */
  has(id: string): boolean {
    return this.#seen.has(id);
  }

  /** How many ids are remembered. */
  get size(): number {
    return this.#seen.size;
  }
}
