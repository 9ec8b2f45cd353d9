/**
 * Storage whose commits a test settles by hand: `record()` of the changes it holds returns a
 * promise that stays pending until the test commits or fails it, so a test can look at the server
 * while a reply waits for its commit, then decide how the commit ends. Everything else commits at
 * once; nothing is kept beyond the test.
 */
import {
  type Change,
  emptyContents,
  type Storage,
  type StoreContents,
} from "../lib/server/store/journal.ts";

/** A recorded change whose commit is held, until the test settles it. */
export interface HeldChange {
  readonly change: Change;
  /** The commit lands: its `record()` resolves. */
  commit(): void;
  /** The commit fails: its `record()` rejects with `error` (a disk error by default). */
  fail(error?: Error): void;
}

/** A storage that holds commits until the test settles them. */
export interface GatedStorage extends Storage {
  /** Changes recorded and not yet committed or failed, oldest first. */
  readonly held: HeldChange[];
  /** Every change recorded, held or not, in order. */
  readonly recorded: Change[];
  /** Every change noted (written down with the next commit, no reply waiting), in order. */
  readonly noted: Change[];
  /**
   * Resolves with the first `count` held changes once that many are held; rejects if they are
   * not held after some turns of the event loop (a test fails rather than hangs).
   */
  waitHeld(count?: number): Promise<HeldChange[]>;
}

/** The kinds of change a gated storage holds unless told otherwise: those a reply waits for. */
export const REPLY_CHANGES: ReadonlyArray<Change["t"]> = ["mail", "block", "post", "unpost"];

/** How many event-loop turns `waitHeld` gives the server before it gives up. */
const WAIT_TURNS = 500;

/**
 * A storage that holds the commit of each change `hold` picks (by default the kinds in
 * REPLY_CHANGES), starting from `contents` (default: empty).
 */
export function gatedStorage(
  options: { hold?: (change: Change) => boolean; contents?: StoreContents } = {},
): GatedStorage {
  const hold = options.hold ?? ((change: Change) => REPLY_CHANGES.includes(change.t));
  const held: HeldChange[] = [];
  const recorded: Change[] = [];
  const noted: Change[] = [];
  const settle = (entry: HeldChange) => {
    const index = held.indexOf(entry);
    if (index < 0) throw new Error(`The commit of a ${entry.change.t} change was settled twice`);
    held.splice(index, 1);
  };
  return {
    contents: options.contents ?? emptyContents(),
    held,
    recorded,
    noted,
    record(change: Change): Promise<void> {
      recorded.push(change);
      if (!hold(change)) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const entry: HeldChange = {
          change,
          commit() {
            settle(entry);
            resolve();
          },
          fail(error = new Error("disk I/O error")) {
            settle(entry);
            reject(error);
          },
        };
        held.push(entry);
      });
    },
    note(change: Change): void {
      noted.push(change);
    },
    close: () => Promise.resolve(),
    async waitHeld(count = 1): Promise<HeldChange[]> {
      for (let turn = 0; turn < WAIT_TURNS && held.length < count; turn++) await nextTurn();
      if (held.length < count) {
        throw new Error(`Expected ${count} held commit(s), found ${held.length}`);
      }
      return held.slice(0, count);
    },
  };
}

/**
 * Marks a request sent ahead of a held commit as looked after: the test awaits it later, and if
 * the test fails first, the request failing as its client closes is not a second, uncaught error
 * (which would cancel the rest of the file).
 */
export function ahead<T>(request: Promise<T>): Promise<T> {
  request.catch(() => {});
  return request;
}

/**
 * Resolves or rejects as `request` does, but rejects if it has not settled after some turns of
 * the event loop: a reply that should come at once, while a commit is held, fails the test when it
 * is held too, instead of hanging it.
 */
export async function promptly<T>(request: Promise<T>, what = "the request"): Promise<T> {
  let settled = false;
  request.then(() => settled = true, () => settled = true);
  for (let turn = 0; turn < WAIT_TURNS && !settled; turn++) await nextTurn();
  if (!settled) throw new Error(`No answer to ${what} while a commit is held`);
  return request;
}

function nextTurn(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}
