/**
 * The changes the server's lasting state goes through, as data: what a Store writes down (one
 * change, or a batch of them in one transaction) and what it reads back at start. The rules
 * (mailbox shares, lockouts, board numbering) live in the state classes; a journal only records.
 */

/** One change to the state that outlives a connection. */
export type Change =
  | { t: "block"; by: string; other: string }
  | { t: "unblock"; by: string; other: string }
  | { t: "mail"; mail: MailRecord }
  /** Offline messages handed to their recipient's connection: they are gone. */
  | { t: "delivered"; ids: number[] }
  | { t: "seen"; user: string; time: number }
  /** A user's failure count and lockout; both 0 forgets them. */
  | { t: "lockout"; user: string; failures: number; until: number }
  /** An account the server is about to write to credentials.txt (registration, new password). */
  | { t: "account"; user: string; secret: string }
  /** That write landed (or was given up): credentials.txt speaks for the account again. */
  | { t: "account-done"; user: string }
  | { t: "post"; post: PostRecord }
  | { t: "unpost"; id: number }
  | { t: "clear-board" }
  | { t: "online"; user: string; time: number }
  | { t: "offline"; user: string };

/** An offline message as stored: its id, recipient, sender, display line, ref and time. */
export interface MailRecord {
  id: number;
  to: string;
  from: string;
  line: string;
  /** The id the recipient's client recognises a second copy by. */
  ref: string;
  time: number;
}

/** One waiting message: who sent it, its display line, and the id its copies share. */
export type StoredMessage = Pick<MailRecord, "id" | "from" | "line" | "ref">;

/** One logged-in session, as every node knows it (the cluster's online list, online_list.ts). */
export interface OnlineEntry {
  user: string;
  /** The node holding the session's connection. */
  node: string;
  /** The session's id, unique across the cluster (its node chooses it). */
  session: string;
  ip: string;
  udpPort: number;
  /** When the login was proposed, epoch ms. */
  loginTime: number;
}

/** An offline message handed to a login of `to` on `node`, not yet settled. */
export interface HandedMail {
  to: string;
  node: string;
  message: StoredMessage;
}

/** A board message as stored; its number is its place in id order. */
export interface PostRecord {
  id: number;
  author: string;
  text: string;
  time: number;
  edited: boolean;
}

/** A user's failed logins and lockout as stored. */
export interface LockoutRecord {
  user: string;
  failures: number;
  until: number;
}

/**
 * Everything a store holds, as read at start. Offline messages and the board are in the order
 * they were made; the other lists in no particular order.
 */
export interface StoreContents {
  blocks: Array<{ by: string; other: string }>;
  mail: MailRecord[];
  /**
   * When each user was last seen leaving. A user the last run had online and never saw leave (it
   * was killed) counts as seen at the last moment that run is known to have been alive.
   */
  seen: Array<{ user: string; time: number }>;
  lockouts: LockoutRecord[];
  /** Account writes that credentials.txt may not have yet (the server stopped in between). */
  accounts: Array<{ user: string; secret: string }>;
  board: PostRecord[];
  /**
   * The ids the mailbox and the board give next, when they are past one more than the largest
   * listed (messages delivered and posts deleted took theirs along). Only a cluster checkpoint
   * (lib/server/cluster/checkpoint.ts) holds them: a replica must go on numbering as the node it
   * was taken from, since ids travel in the log. Absent: one past the largest listed.
   */
  next?: { mail: number; post: number };
  /**
   * The cluster's online list (lib/server/cluster/online_list.ts): the sessions in login order and
   * the offline messages handed to them and not yet settled. Only a cluster checkpoint holds it:
   * a single server's sessions end with it. Absent: nobody.
   */
  online?: { entries: OnlineEntry[]; handed: HandedMail[] };
  /**
   * The cluster's accounts (lib/server/cluster/accounts.ts), names and hashes in the order they
   * were decided. Only a cluster checkpoint holds them: a single server's accounts are its
   * credentials.txt. Absent: none.
   */
  ledger?: Array<{ user: string; secret: string }>;
}

/** A store with nothing in it. */
export function emptyContents(): StoreContents {
  return { blocks: [], mail: [], seen: [], lockouts: [], accounts: [], board: [] };
}

/** A storage that cannot be used: the message says which (a path, a database URL) and why. */
export class StorageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "StorageError";
  }
}

/** Where changes are written down, and what was there when the server started. */
export interface Storage extends Journal {
  readonly contents: StoreContents;
}

/** Where changes are written down. */
export interface Journal {
  /**
   * Records a change; resolves once it is durable (committed), rejects if it could not be.
   * Changes are applied in the order they were recorded.
   */
  record(change: Change): Promise<void>;
  /**
   * Writes a change down soon (with the next commit, within a tenth of a second), for changes no
   * reply waits for: a burst of them costs one commit. Applied in order with recorded changes.
   */
  note(change: Change): void;
  /** Writes what is pending and lets go of the storage. */
  close(): Promise<void>;
}

/** A journal that keeps nothing: the state lives only in memory, for tests and throwaway runs. */
export const memoryJournal: Journal = {
  record: () => Promise.resolve(),
  note: () => {},
  close: () => Promise.resolve(),
};

/** Storage that keeps nothing and starts empty: the in-memory store. */
export function memoryStorage(): Storage {
  return { ...memoryJournal, contents: emptyContents() };
}
