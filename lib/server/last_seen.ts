/**
 * When each user was last online, for `whoelsesince`: who is online now is written down as they
 * log in, and the time they leave as they leave, so a restart (even after the server was killed)
 * still knows who was around before it.
 */
import { type Journal, memoryJournal } from "./store/journal.ts";

/** Last-seen times by username. */
export class LastSeen {
  readonly #times = new Map<string, number>();
  readonly #journal: Journal;

  /** `seen` are the times known when the server started. */
  constructor(options: { journal?: Journal; seen?: Array<{ user: string; time: number }> } = {}) {
    this.#journal = options.journal ?? memoryJournal;
    for (const { user, time } of options.seen ?? []) this.#times.set(user, time);
  }

  /** When each user who has left last left. */
  get times(): ReadonlyMap<string, number> {
    return this.#times;
  }

  /** `user` logged in at `time` (noted: no reply waits for it, so a burst costs one commit). */
  arrived(user: string, time: number): void {
    this.#journal.note({ t: "online", user, time });
  }

  /**
   * Applies a `seen` change another node made (lib/server/store/replica.ts): `user` last left at
   * `time`, not written down again. `online` and `offline` change nothing here: they are the
   * storage's record of who a killed run left online, and the time comes with the `seen` that
   * follows every `offline`.
   */
  applySeen(user: string, time: number): void {
    this.#times.set(user, time);
  }

  /** `user` left at `time` (noted). */
  left(user: string, time: number): void {
    this.#times.set(user, time);
    this.#journal.note({ t: "offline", user });
    this.#journal.note({ t: "seen", user, time });
  }
}
