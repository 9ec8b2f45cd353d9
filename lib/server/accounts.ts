/**
 * Accounts, read from credentials.txt at every login so edits take effect at once, and
 * written (registration, password change) hashed and atomically, one change at a time. A change
 * is written down in the store's journal first and the file after, so a server killed in between
 * finishes the file at its next start (`recover`): credentials.txt stays the one place accounts
 * are defined and edited by hand, and nothing the server acknowledged is lost.
 */
import {
  type Account,
  DEFAULT_HASH_COST,
  hashClearPasswords,
  type HashCost,
  hashPassword,
  isHashed,
  normaliseName,
  parseCredentials,
  setSecret,
  verifyPassword,
} from "./credentials.ts";
import { CommandError } from "../shared/errors.ts";
import type { TextFiles } from "./files.ts";
import { HashPool } from "./hash_pool.ts";
import type { Logger } from "../shared/logger.ts";
import { type Journal, memoryJournal } from "./store/journal.ts";

/** Permission bits of a credentials file the server creates: only its owner may read it. */
export const CREDENTIALS_MODE = 0o600;

/** `passwd` was given a wrong old password. */
export class WrongPasswordError extends CommandError {
  constructor() {
    super("Old password is incorrect. Password not changed.");
    this.name = "WrongPasswordError";
  }
}

/** What an account store works with besides its file. */
export interface AccountStoreOptions {
  logger: Logger;
  /** The scrypt cost of the hashes it writes. */
  hashCost?: HashCost;
  /** Where hashing runs; a full pool refuses with ServerBusyError. */
  pool?: HashPool;
  /** Where a change is written down before the file is (default: nowhere). */
  journal?: Journal;
}

/** The account store over one credentials file. */
export class AccountStore {
  readonly logger: Logger;
  readonly hashCost: HashCost;
  readonly pool: HashPool;
  #lastText: string | undefined;
  #lastStamp: string | undefined;
  #accounts: Map<string, Account> | undefined;
  #writes: Promise<unknown> = Promise.resolve();
  readonly #journal: Journal;

  constructor(readonly files: TextFiles, readonly path: string, options: AccountStoreOptions) {
    this.logger = options.logger;
    this.hashCost = options.hashCost ?? DEFAULT_HASH_COST;
    this.pool = options.pool ?? new HashPool();
    this.#journal = options.journal ?? memoryJournal;
  }

  /**
   * Finishes account changes a previous run wrote down but may not have written to the file (it
   * was killed in between): the file gets them now, in one write. Resolves to how many.
   */
  recover(pending: Array<{ user: string; secret: string }>): Promise<number> {
    if (pending.length === 0) return Promise.resolve(0);
    return this.#exclusive(async () => {
      let text = (await this.files.read(this.path)) ?? "";
      for (const { user, secret } of pending) text = setSecret(text, user, secret);
      await this.files.replace(this.path, text, { newFileMode: CREDENTIALS_MODE, durable: true });
      for (const { user } of pending) this.#journal.note({ t: "account-done", user });
      return pending.length;
    });
  }

  async #load(): Promise<Map<string, Account>> {
    // Looked at every login so edits count at once: reread when its stamp (identity, size,
    // modification time) changed, or always where there is none; parse only what changed.
    const stamp = await this.files.stamp?.(this.path);
    if (stamp !== undefined && stamp === this.#lastStamp && this.#accounts) return this.#accounts;
    const text = (await this.files.read(this.path)) ?? "";
    this.#lastStamp = stamp;
    if (text !== this.#lastText || !this.#accounts) {
      const parsed = parseCredentials(text, this.path);
      this.#lastText = text;
      this.#accounts = parsed.accounts;
      for (const problem of parsed.problems) this.logger.warn(problem);
    }
    return this.#accounts;
  }

  /** The account called `username`, as the file says now. */
  async find(username: string): Promise<Account | undefined> {
    return (await this.#load()).get(normaliseName(username));
  }

  /**
   * Whether `password` is `username`'s password right now. Checking a hash takes a turn in the
   * pool; rejects with ServerBusyError when there is none to be had.
   */
  async check(username: string, password: string): Promise<boolean> {
    const account = await this.find(username);
    if (account === undefined) return false;
    const { secret } = account;
    if (!isHashed(secret)) return verifyPassword(password, secret);
    return this.pool.run((derive) => verifyPassword(password, secret, derive));
  }

  /** Creates an account; fails if the name was taken meanwhile (or the pool is full). */
  register(username: string, password: string): Promise<void> {
    return this.#exclusive(async () => {
      if (await this.find(username)) {
        throw new CommandError(`Username ${username} is already taken`);
      }
      await this.#write(username, await this.#hash(password));
    });
  }

  /**
   * Changes a password after checking the old one; a wrong one fails with WrongPasswordError (and
   * a full pool with ServerBusyError).
   */
  changePassword(username: string, oldPassword: string, newPassword: string): Promise<void> {
    return this.#exclusive(async () => {
      if (!await this.check(username, oldPassword)) throw new WrongPasswordError();
      await this.#write(username, await this.#hash(newPassword));
    });
  }

  #hash(password: string): Promise<string> {
    return this.pool.run((derive) => hashPassword(password, this.hashCost, derive));
  }

  async #write(username: string, secret: string): Promise<void> {
    const user = normaliseName(username);
    const failed = (error: unknown) => {
      this.logger.warn(`Could not write ${this.path}: ${String(error)}`);
      return new CommandError(`The server could not save the account; try again later`);
    };
    try {
      await this.#journal.record({ t: "account", user, secret });
    } catch (error) {
      throw failed(error);
    }
    try {
      const text = (await this.files.read(this.path)) ?? "";
      await this.files.replace(this.path, setSecret(text, user, secret), {
        newFileMode: CREDENTIALS_MODE,
        durable: true,
      });
    } catch (error) {
      throw failed(error);
    } finally {
      // Written, or given up (the user was told it failed): the file speaks for the account.
      this.#journal.note({ t: "account-done", user });
    }
  }

  #exclusive<T>(work: () => Promise<T>): Promise<T> {
    const result = this.#writes.then(work);
    this.#writes = result.catch(() => {});
    return result;
  }
}

/**
 * `chat-server --hash-credentials`: rewrites every clear-text password in the credentials file at
 * `path` as an scrypt hash, keeping every other line byte for byte and the file's mode, and
 * returns how many were hashed. If the file changes while the hashes are computed (a running
 * server registered someone), it starts again from the new text. Throws if the file is missing
 * or cannot be read or written.
 */
export async function hashCredentialsFile(
  files: TextFiles,
  path: string,
  cost: HashCost = DEFAULT_HASH_COST,
): Promise<number> {
  for (let attempt = 1;; attempt++) {
    const text = await files.read(path);
    if (text === undefined) throw new Deno.errors.NotFound(`${path} does not exist`);
    const result = await hashClearPasswords(text, (password) => hashPassword(password, cost));
    if (result.hashed === 0) return 0;
    if (attempt < 3 && await files.read(path) !== text) continue;
    await files.replace(path, result.text, { newFileMode: CREDENTIALS_MODE });
    return result.hashed;
  }
}
