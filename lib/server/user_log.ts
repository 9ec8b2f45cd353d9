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

function logLine(seq: number, user: ActiveUser): string {
  return `${seq}; ${
    formatTimestamp(user.loginTime)
  }; ${user.username}; ${user.ip}; ${user.udpPort}\n`;
}

/** The active-user list and its file. */
export class UserLog {
  readonly #users: ActiveUser[] = [];
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
    return this.#users.map((u, i) => logLine(i + 1, u)).join("");
  }

  /** Empties the list and the file. */
  reset(): Promise<void> {
    this.#users.length = 0;
    return this.#log.replace("");
  }

  /** The active users, oldest login first. */
  get users(): readonly ActiveUser[] {
    return this.#users;
  }

  /** Records a login; resolves once the line is in the file. */
  add(user: ActiveUser): Promise<void> {
    this.#users.push(user);
    return this.#log.append(logLine(this.#users.length, user));
  }

  /** Removes a user's line, renumbering the rest; resolves once the file is rewritten. */
  remove(username: string): Promise<void> {
    const index = this.#users.findIndex((u) => u.username === username);
    if (index < 0) return Promise.resolve();
    this.#users.splice(index, 1);
    return this.#log.replace(this.#render());
  }
}
