/**
 * Accounts, read from credentials.txt at every login so edits take effect at once, and
 * written (registration, password change) hashed and atomically, one change at a time. A change
 * is written down in the store's journal first and the file after, so a server killed in between
 * finishes the file at its next start (`recover`): credentials.txt stays the one place accounts
 * are defined and edited by hand, and nothing the server acknowledged is lost.
 *
 * In cluster mode (an {@linkcode AccountLedger}) the accounts are the cluster's, decided in log
 * order (lib/server/cluster/accounts.ts) and kept here in memory: `find` and `check` read them, a
 * registration or a new password is hashed here and proposed through the ledger, and every decided
 * change is mirrored into this node's credentials.txt. At start (`join`) the file's accounts the
 * cluster does not know are proposed, and the file is rewritten to the cluster's secrets.
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

/** An account as the cluster holds it: a name and its secret (an scrypt hash). */
export interface AccountRecord {
  user: string;
  secret: string;
}

/**
 * Where a cluster node's account changes are decided (lib/server/cluster/accounts.ts implements
 * it over the cluster's log). Each resolves once the change is decided, applied to this store
 * (`applyAccount`) and written to this node's credentials.txt; each rejects with a CommandError
 * when refused or when the cluster cannot take it.
 */
export interface AccountLedger {
  /** Adds `user` with `secret` (a hash); refused if the cluster has the name already. */
  register(user: string, secret: string): Promise<void>;
  /**
   * Makes `secret` (a hash) `user`'s, in place of `old`, the secret the old password was checked
   * against; rejects with WrongPasswordError if the account's secret is no longer `old`.
   */
  replace(user: string, secret: string, old: string): Promise<void>;
  /** Adds those of `accounts` (hashed) the cluster does not know; resolves to their names. */
  adopt(accounts: AccountRecord[]): Promise<string[]>;
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
  /**
   * Cluster mode: the accounts are the cluster's, decided through this ledger, starting from
   * `replicated` (those of the node's checkpoint); the file is their mirror.
   */
  cluster?: { ledger: AccountLedger; replicated: AccountRecord[] };
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
  /** Cluster mode: the ledger, and the cluster's accounts (secrets by name), in decision order. */
  readonly #ledger: AccountLedger | undefined;
  readonly #replicated = new Map<string, string>();
  /** A mirror write queued and not yet started: later changes ride on it. */
  #mirrorQueued: Promise<void> | undefined;

  constructor(readonly files: TextFiles, readonly path: string, options: AccountStoreOptions) {
    this.logger = options.logger;
    this.hashCost = options.hashCost ?? DEFAULT_HASH_COST;
    this.pool = options.pool ?? new HashPool();
    this.#journal = options.journal ?? memoryJournal;
    this.#ledger = options.cluster?.ledger;
    for (const { user, secret } of options.cluster?.replicated ?? []) {
      this.#replicated.set(user, secret);
    }
  }

  /**
   * Finishes account changes a previous run wrote down but may not have written to the file (it
   * was killed in between): the file gets them now, in one write. Resolves to how many.
   */
  recover(pending: Array<{ user: string; secret: string }>): Promise<number> {
    if (pending.length === 0) return Promise.resolve(0);
    return this.#exclusive(async () => {
      const secrets = new Map(pending.map(({ user, secret }) => [user, secret]));
      const text = withSecrets((await this.files.read(this.path)) ?? "", secrets);
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

  /** The account called `username`, as the file says now (in cluster mode: as the cluster does). */
  async find(username: string): Promise<Account | undefined> {
    const user = normaliseName(username);
    if (this.#ledger) {
      const secret = this.#replicated.get(user);
      return secret === undefined ? undefined : { username: user, secret, line: 0 };
    }
    return (await this.#load()).get(user);
  }

  /**
   * Whether `password` is `username`'s password right now. Checking a hash takes a turn in the
   * pool; rejects with ServerBusyError when there is none to be had.
   */
  async check(username: string, password: string): Promise<boolean> {
    const account = await this.find(username);
    if (account === undefined) return false;
    return await this.#verify(password, account.secret);
  }

  #verify(password: string, secret: string): Promise<boolean> {
    if (!isHashed(secret)) return verifyPassword(password, secret);
    return this.pool.run((derive) => verifyPassword(password, secret, derive));
  }

  /** The cluster's secret for `user` (cluster mode), or undefined if it has no such account. */
  known(user: string): string | undefined {
    return this.#replicated.get(normaliseName(user));
  }

  /** The cluster's accounts (cluster mode), in the order they were decided: for a checkpoint. */
  get replicated(): AccountRecord[] {
    return [...this.#replicated].map(([user, secret]) => ({ user, secret }));
  }

  /**
   * Cluster mode: the cluster decided that `user`'s secret is `secret`. Applied at once; the
   * promise settles once credentials.txt has it, and never rejects (a failed write is logged, and
   * the next write puts every account right).
   */
  applyAccount(user: string, secret: string): Promise<void> {
    this.#replicated.set(normaliseName(user), secret);
    return this.#mirror();
  }

  /**
   * Cluster mode, at the node's start: proposes the accounts of this node's credentials.txt that
   * the cluster does not know (clear-text passwords hashed first), and once that is decided (so
   * this node has caught up to its own start) rewrites the file to the cluster's secrets: an
   * account the cluster knows keeps the cluster's secret, whatever a stale file says. Resolves to
   * the names the cluster took from the file; rejects with a CommandError if the cluster could not
   * take them.
   */
  async join(): Promise<string[]> {
    const ledger = this.#ledger;
    if (!ledger) return [];
    const text = (await this.files.read(this.path)) ?? "";
    const parsed = parseCredentials(text, this.path);
    for (const problem of parsed.problems) this.logger.warn(problem);
    const unknown: AccountRecord[] = [];
    for (const { username, secret } of parsed.accounts.values()) {
      if (this.#replicated.has(username)) continue;
      unknown.push({
        user: username,
        secret: isHashed(secret) ? secret : await this.#hash(secret),
      });
    }
    const added = await ledger.adopt(unknown);
    await this.#mirror();
    return added;
  }

  /**
   * Writes the cluster's accounts into credentials.txt: each account's line gets the cluster's
   * secret (in place) or is appended; every other line is kept byte for byte (accounts added by
   * hand are proposed at the node's next start). Writes that queue up behind one another are one.
   */
  #mirror(): Promise<void> {
    if (this.#mirrorQueued) return this.#mirrorQueued;
    const run = this.#writes.then(async () => {
      // From here on, a change needs a write of its own: this one may have read the map already.
      this.#mirrorQueued = undefined;
      try {
        const text = (await this.files.read(this.path)) ?? "";
        const mirrored = withSecrets(text, this.#replicated);
        if (mirrored === text) return;
        await this.files.replace(this.path, mirrored, {
          newFileMode: CREDENTIALS_MODE,
          durable: true,
        });
      } catch (error) {
        this.logger.warn(
          `Could not write ${this.path} (it is rewritten at the next change): ${error}`,
        );
      }
    });
    this.#mirrorQueued = run;
    this.#writes = run;
    return run;
  }

  /** Creates an account; fails if the name was taken meanwhile (or the pool is full). */
  register(username: string, password: string): Promise<void> {
    const ledger = this.#ledger;
    if (ledger) {
      return (async () => {
        const user = normaliseName(username);
        // Checked again in log order; this spares a hash for a name taken long ago.
        if (this.#replicated.has(user)) {
          throw new CommandError(`Username ${username} is already taken`);
        }
        await ledger.register(user, await this.#hash(password));
      })();
    }
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
    const ledger = this.#ledger;
    if (ledger) {
      return (async () => {
        const user = normaliseName(username);
        const old = this.#replicated.get(user);
        if (old === undefined || !await this.#verify(oldPassword, old)) {
          throw new WrongPasswordError();
        }
        await ledger.replace(user, await this.#hash(newPassword), old);
      })();
    }
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
 * `text` (credentials) with every account of `secrets` set to its secret there: the first line of
 * the name changed in place, or a line appended; every other line kept byte for byte. One pass
 * (setSecret for each account would read the whole text once per account).
 */
export function withSecrets(text: string, secrets: ReadonlyMap<string, string>): string {
  const lines = text === "" ? [] : text.split("\n");
  const done = new Set<string>();
  let changed = false;
  for (const [index, raw] of lines.entries()) {
    const cr = raw.endsWith("\r");
    const fields = (cr ? raw.slice(0, -1) : raw).split(" ");
    if (fields.length !== 2) continue;
    const user = normaliseName(fields[0]!);
    const secret = secrets.get(user);
    if (secret === undefined || done.has(user)) continue;
    done.add(user);
    if (fields[1] === secret) continue;
    lines[index] = `${user} ${secret}${cr ? "\r" : ""}`;
    changed = true;
  }
  const missing = [...secrets].filter(([user]) => !done.has(user));
  if (missing.length > 0) {
    // Appended before the final newline, which a file without one gets.
    if (lines.at(-1) !== "") lines.push("");
    lines.splice(lines.length - 1, 0, ...missing.map(([user, secret]) => `${user} ${secret}`));
  } else if (!changed) return text;
  return lines.join("\n");
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
