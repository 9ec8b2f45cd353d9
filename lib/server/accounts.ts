/**
 * Accounts, read from credentials.txt at every login so edits take effect at once, and
 * written (registration, password change) hashed and atomically, one change at a time.
 */
import {
  type Account,
  DEFAULT_HASH_COST,
  type HashCost,
  hashPassword,
  normaliseName,
  parseCredentials,
  setSecret,
  verifyPassword,
} from "./credentials.ts";
import { CommandError } from "../shared/errors.ts";
import type { TextFiles } from "./files.ts";
import type { Logger } from "../shared/logger.ts";

/** The account store over one credentials file. */
export class AccountStore {
  #lastText: string | undefined;
  #accounts: Map<string, Account> | undefined;
  #writes: Promise<unknown> = Promise.resolve();

  constructor(
    readonly files: TextFiles,
    readonly path: string,
    readonly logger: Logger,
    readonly hashCost: HashCost = DEFAULT_HASH_COST,
  ) {}

  async #load(): Promise<Map<string, Account>> {
    // Read at every login so edits count at once; parse (and report) only what changed.
    const text = (await this.files.read(this.path)) ?? "";
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

  /** Whether `password` is `username`'s password right now. */
  async check(username: string, password: string): Promise<boolean> {
    const account = await this.find(username);
    return account !== undefined && await verifyPassword(password, account.secret);
  }

  /** Creates an account; fails if the name was taken meanwhile. */
  register(username: string, password: string): Promise<void> {
    return this.#exclusive(async () => {
      if (await this.find(username)) {
        throw new CommandError(`Username ${username} is already taken`);
      }
      await this.#write(username, await hashPassword(password, this.hashCost));
    });
  }

  /** Changes a password after checking the old one. */
  changePassword(username: string, oldPassword: string, newPassword: string): Promise<void> {
    return this.#exclusive(async () => {
      if (!await this.check(username, oldPassword)) {
        throw new CommandError("Old password is incorrect. Password not changed.");
      }
      await this.#write(username, await hashPassword(newPassword, this.hashCost));
    });
  }

  async #write(username: string, secret: string): Promise<void> {
    try {
      const text = (await this.files.read(this.path)) ?? "";
      await this.files.replace(this.path, setSecret(text, normaliseName(username), secret));
    } catch (error) {
      this.logger.warn(`Could not write ${this.path}: ${String(error)}`);
      throw new CommandError(`The server could not save the account; try again later`);
    }
  }

  #exclusive<T>(work: () => Promise<T>): Promise<T> {
    const result = this.#writes.then(work);
    this.#writes = result.catch(() => {});
    return result;
  }
}
