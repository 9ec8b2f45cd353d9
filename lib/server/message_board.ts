/**
 * The shared message board, kept in memory and mirrored to messagelog.txt. Posting appends one
 * line; an edit or a delete rewrites the file atomically. Numbers are 1-based and contiguous.
 * With `keep` (chat-server --keep-board) every change is also written down (the store's journal)
 * before it is acknowledged, and the board survives restarts; otherwise it starts empty each time.
 */
import type { Clock } from "../shared/clock.ts";
import { CommandError } from "../shared/errors.ts";
import { OrderedWriter, type TextFiles } from "./files.ts";
import { formatTimestamp, truncateToSecond } from "../shared/timestamp.ts";
import { type Change, type Journal, memoryJournal, type PostRecord } from "./store/journal.ts";

/** One message on the board. */
export interface BoardMessage {
  author: string;
  text: string;
  /** When it was posted or last edited, epoch ms in whole seconds. */
  time: number;
  edited: boolean;
}

/** A message with its current number. */
export interface NumberedMessage extends BoardMessage {
  number: number;
}

/** A message as a post, edit or delete left it, and when that change is written down. */
export interface Changed extends NumberedMessage {
  /** Settles once the change is in the store (at once unless the board is kept). */
  committed: Promise<void>;
}

function logLine(number: number, message: BoardMessage): string {
  return `${number}; ${formatTimestamp(message.time)}; ${message.author}; ${message.text}; ${
    message.edited ? "yes" : "no"
  }\n`;
}

/** How a board keeps its messages beyond its file. */
export interface BoardOptions {
  /** Hears of a failed file write; the board carries on and the file heals later. */
  onWriteError?: (error: unknown) => void;
  /** Keep the board across restarts: write every change down, and start from `posts`. */
  keep?: boolean;
  journal?: Journal;
  /** The board as the store had it at start, in order (used with `keep`). */
  posts?: PostRecord[];
  /** The id the next post takes, if past those in `posts` (a cluster checkpoint's; with `keep`). */
  nextId?: number;
}

/** The board and its log file. */
export class MessageBoard {
  readonly #messages: Array<BoardMessage & { id: number }> = [];
  readonly #log: OrderedWriter;
  readonly #clock: Clock;
  readonly #journal: Journal;
  readonly #keep: boolean;
  #nextId = 1;
  /** Changes whose commit failed, oldest first, waiting to be taken back together. */
  readonly #failed: Array<() => void> = [];
  #takingBack: Promise<void> | undefined;

  constructor(files: TextFiles, path: string, clock: Clock, options: BoardOptions = {}) {
    this.#log = new OrderedWriter(files, path, {
      snapshot: () => this.#render(),
      ...(options.onWriteError ? { onError: options.onWriteError } : {}),
    });
    this.#clock = clock;
    this.#keep = options.keep ?? false;
    this.#journal = options.journal ?? memoryJournal;
    for (const post of this.#keep ? options.posts ?? [] : []) {
      const { id, author, text, time, edited } = post;
      this.#messages.push({ id, author, text, time, edited });
      this.#nextId = Math.max(this.#nextId, id + 1);
    }
    if (this.#keep) this.#nextId = Math.max(this.#nextId, options.nextId ?? 1);
  }

  /**
   * Writes messagelog.txt as the server starts: empty (the conference starts empty), or, with
   * `keep`, the board as it was kept.
   */
  async reset(): Promise<void> {
    if (!this.#keep) {
      this.#messages.length = 0;
      // A board kept by an earlier run is gone too: this run started empty, as the file says.
      await this.#journal.record({ t: "clear-board" }).catch(() => {});
    }
    await this.#log.replace(this.#render());
  }

  /** How many messages there are. */
  get size(): number {
    return this.#messages.length;
  }

  /**
   * Posts a message; resolves once its line is in the log. With `keep`, `committed` settles once
   * the post is written down in the store (the reply waits for it); if that fails, the post is
   * taken back and `committed` rejects with the reason.
   */
  async post(author: string, text: string): Promise<Changed> {
    const time = truncateToSecond(this.#clock.now());
    const message = { id: this.#nextId++, author, text, time, edited: false };
    this.#messages.push(message);
    const number = this.#messages.length;
    const committed = this.#keepChange({ t: "post", post: message }, () => {
      const index = this.#messages.indexOf(message);
      if (index >= 0) this.#messages.splice(index, 1);
    });
    await this.#log.append(logLine(number, message));
    return { author, text, time, edited: false, number, committed };
  }

  /**
   * Deletes message `number` posted or last edited at `time` by `requester`. Checks, in order:
   * the number exists, the timestamp matches, the requester is the author. `committed` as for
   * `post` (a delete that cannot be written down puts the message back in its place).
   */
  async remove(number: number, time: number, requester: string): Promise<Changed> {
    const message = this.#checked(number, time, requester, "delete");
    this.#messages.splice(number - 1, 1);
    const committed = this.#keepChange({ t: "unpost", id: message.id }, () => {
      // Back in id order, which is the board's order.
      const at = this.#messages.findIndex((other) => other.id > message.id);
      this.#messages.splice(at < 0 ? this.#messages.length : at, 0, message);
    });
    await this.#rewrite();
    const { author, text, edited } = message;
    const now = truncateToSecond(this.#clock.now());
    return { author, text, edited, number, time: now, committed };
  }

  /** Replaces the text of message `number`; same checks as `remove`, `committed` as for `post`. */
  async edit(number: number, time: number, requester: string, text: string): Promise<Changed> {
    const message = this.#checked(number, time, requester, "edit");
    const before = { ...message };
    Object.assign(message, { text, time: truncateToSecond(this.#clock.now()), edited: true });
    const committed = this.#keepChange({ t: "post", post: { ...message } }, () => {
      Object.assign(message, before);
    });
    await this.#rewrite();
    const { author } = message;
    return { author, text, time: message.time, edited: true, number, committed };
  }

  /**
   * Writes a change (already made) down when the board is kept; if that fails, `undo` takes it
   * back, the file follows, and the promise rejects with a reason for the user.
   */
  #keepChange(change: Change, undo: () => void): Promise<void> {
    if (!this.#keep) return Promise.resolve();
    const committed = this.#journal.record(change).catch(async () => {
      await this.#takeBack(undo);
      throw new CommandError("The server could not save the board; try again later.");
    });
    // Whoever waits for it hears of a failure; until then it is not an unhandled rejection.
    committed.catch(() => {});
    return committed;
  }

  /**
   * Takes a change back that could not be written down. A commit that fails fails all of its
   * changes at once; they are taken back together, newest first (a post and its delete, or two
   * edits of one message, failing together end where they began), and the file follows once.
   */
  #takeBack(undo: () => void): Promise<void> {
    this.#failed.push(undo);
    // Every failure of the same commit is heard before this runs (they settle together).
    this.#takingBack ??= Promise.resolve().then(() => {
      for (const failed of this.#failed.splice(0).reverse()) failed();
      this.#takingBack = undefined;
      return this.#rewrite();
    });
    return this.#takingBack;
  }

  /**
   * Applies a `post` change another node made (lib/server/store/replica.ts): a new message takes
   * its place in id order, and this board's own ids continue past it; an id already here is an
   * edit, and takes the recorded text, time and flag. It is not written down again. The state
   * changes at once; the promise settles once messagelog.txt matches (a message at the end is
   * appended to it, as a post here is; anything else rewrites it).
   */
  applyPost({ id, author, text, time, edited }: PostRecord): Promise<void> {
    this.#nextId = Math.max(this.#nextId, id + 1);
    const message = { id, author, text, time, edited };
    const at = this.#messages.findIndex((other) => other.id >= id);
    if (at < 0) {
      this.#messages.push(message);
      return this.#log.append(logLine(this.#messages.length, message));
    }
    if (this.#messages[at]!.id === id) Object.assign(this.#messages[at]!, message);
    else this.#messages.splice(at, 0, message);
    return this.#rewrite();
  }

  /**
   * Applies an `unpost` change another node made: message `id` is gone and the later ones move up
   * a number. An id no longer here changes nothing. Settles as `applyPost` does.
   */
  applyUnpost(id: number): Promise<void> {
    const at = this.#messages.findIndex((message) => message.id === id);
    if (at < 0) return Promise.resolve();
    this.#messages.splice(at, 1);
    return this.#rewrite();
  }

  /**
   * Applies a `clear-board` change another node made: the board is empty. Its ids still continue
   * past every message it had, so a message posted here later is never taken for an old one.
   */
  applyClear(): Promise<void> {
    this.#messages.length = 0;
    return this.#rewrite();
  }

  /** Every message whose current timestamp is strictly later than `time`, oldest first. */
  since(time: number): NumberedMessage[] {
    return this.#messages
      .map(({ author, text, time, edited }, index) => ({
        author,
        text,
        time,
        edited,
        number: index + 1,
      }))
      .filter((message) => message.time > time)
      .sort((a, b) => a.time - b.time || a.number - b.number);
  }

  /** Every message as stored, with its id, in board order (for a cluster checkpoint). */
  get posts(): PostRecord[] {
    return this.#messages.map(({ id, author, text, time, edited }) => ({
      id,
      author,
      text,
      time,
      edited,
    }));
  }

  /** The id the next post takes: past every message this board has had. */
  get nextId(): number {
    return this.#nextId;
  }

  /**
   * Message `number` as stored (with its id), if `requester` may `verb` it; otherwise throws the
   * CommandError saying why. Checks, in order: the number exists, the timestamp `time` matches,
   * the requester is the author. The one rule for `remove`, `edit` and cluster proposals
   * (lib/server/cluster/proposals.ts).
   */
  check(number: number, time: number, requester: string, verb: "delete" | "edit"): PostRecord {
    return { ...this.#checked(number, time, requester, verb) };
  }

  #checked(
    number: number,
    time: number,
    requester: string,
    verb: string,
  ): BoardMessage & { id: number } {
    const message = this.#messages[number - 1];
    if (number < 1 || !message) throw new CommandError(`Message #${number} does not exist.`);
    if (message.time !== truncateToSecond(time)) {
      throw new CommandError(
        `Timestamp ${formatTimestamp(time)} does not match Message #${number}.`,
      );
    }
    if (message.author !== requester) {
      throw new CommandError(`Unauthorised to ${verb} Message #${number}.`);
    }
    return message;
  }

  #render(): string {
    return this.#messages.map((m, i) => logLine(i + 1, m)).join("");
  }

  #rewrite(): Promise<void> {
    return this.#log.replace(this.#render());
  }
}
