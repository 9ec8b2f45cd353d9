/**
 * userlog.txt: the active users in login order, numbered from 1. A login appends one line; a
 * logout rewrites the file atomically with the later lines renumbered.
 */
import { OrderedWriter, type TextFiles } from "./files.ts";
import { formatTimestamp } from "../shared/timestamp.ts";

/** One active user as the log records it. */
export interface ActiveUser {
  username: string;
  loginTime: number;
  ip: string;
  udpPort: number;
}

/**
 * userlog.txt's text for `users` in login order, numbered from 1: the one rendering of the file
 * (a cluster node renders the cluster-wide list with it, lib/server/cluster/online_list.ts).
 */
export function userLogText(users: Iterable<ActiveUser>): string {
  let text = "";
  let seq = 0;
  for (const user of users) text += logLine(++seq, user);
  return text;
}

function logLine(seq: number, user: ActiveUser): string {
  return `${seq}; ${
    formatTimestamp(user.loginTime)
  }; ${user.username}; ${user.ip}; ${user.udpPort}\n`;
}

/**
 * The active-user list and its file. Users are kept by name in login order, so a login or a
 * logout costs O(1); the file is rendered only when a rewrite actually goes out, so a burst of
 * logouts (or a shutdown) renders and writes it once.
 */
export class UserLog {
  readonly #users = new Map<string, ActiveUser>();
  readonly #log: OrderedWriter;

  /** `onWriteError` hears of a failed write; the list carries on and the file heals later. */
  constructor(
    files: TextFiles,
    path: string,
    options: { onWriteError?: (error: unknown) => void } = {},
  ) {
    this.#log = new OrderedWriter(files, path, {
      snapshot: () => this.#render(),
      ...(options.onWriteError ? { onError: options.onWriteError } : {}),
    });
  }

  #render(): string {
    return userLogText(this.#users.values());
  }

  /** Empties the list and the file (at start, and when the server stops: one write for all). */
  reset(): Promise<void> {
    this.#users.clear();
    return this.#log.rewrite();
  }

  /**
   * Makes `users` (in login order) the list and rewrites the file: a cluster node mirrors the
   * cluster's online list so (lib/server/cluster/local_effects.ts).
   */
  replace(users: Iterable<ActiveUser>): Promise<void> {
    this.#users.clear();
    for (const user of users) this.#users.set(user.username, user);
    return this.#log.rewrite();
  }

  /** The active users, oldest login first (a copy). */
  get users(): ActiveUser[] {
    return [...this.#users.values()];
  }

  /** How many users are active. */
  get size(): number {
    return this.#users.size;
  }

  /** Records a login; resolves once the line is in the file. */
  add(user: ActiveUser): Promise<void> {
    // A name already listed (it never is: a user leaves before logging in again) moves to the end.
    this.#users.delete(user.username);
    this.#users.set(user.username, user);
    return this.#log.append(logLine(this.#users.size, user));
  }

  /**
   * Removes a user's line, renumbering the rest; resolves once a write that left it out has
   * landed. Removals queued while a write is in flight go out together as one rewrite.
   */
  remove(username: string): Promise<void> {
    if (!this.#users.delete(username)) return Promise.resolve();
    return this.#log.rewrite();
  }
}
