/**
 * The shared message board, kept in memory and mirrored to messagelog.txt. Posting appends one
 * line; an edit or a delete rewrites the file atomically. Numbers are 1-based and contiguous.
 */
import type { Clock } from "../shared/clock.ts";
import { CommandError } from "../shared/errors.ts";
import { OrderedWriter, type TextFiles } from "./files.ts";
import { formatTimestamp, truncateToSecond } from "../shared/timestamp.ts";

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

function logLine(number: number, message: BoardMessage): string {
  return `${number}; ${formatTimestamp(message.time)}; ${message.author}; ${message.text}; ${
    message.edited ? "yes" : "no"
  }\n`;
}

/** The board and its log file. */
export class MessageBoard {
  readonly #messages: BoardMessage[] = [];
  readonly #log: OrderedWriter;
  readonly #clock: Clock;

  /** `onWriteError` hears of a failed write; the board carries on and the file heals later. */
  constructor(
    files: TextFiles,
    path: string,
    clock: Clock,
    options: { onWriteError?: (error: unknown) => void } = {},
  ) {
    this.#log = new OrderedWriter(files, path, {
      snapshot: () => this.#render(),
      ...(options.onWriteError ? { onError: options.onWriteError } : {}),
    });
    this.#clock = clock;
  }

  /** Empties the board and its file (the conference starts empty). */
  reset(): Promise<void> {
    this.#messages.length = 0;
    return this.#log.replace("");
  }

  /** How many messages there are. */
  get size(): number {
    return this.#messages.length;
  }

  /** Posts a message; resolves once its line is in the log. */
  async post(author: string, text: string): Promise<NumberedMessage> {
    const message = { author, text, time: truncateToSecond(this.#clock.now()), edited: false };
    this.#messages.push(message);
    const number = this.#messages.length;
    await this.#log.append(logLine(number, message));
    return { ...message, number };
  }

  /**
   * Deletes message `number` posted or last edited at `time` by `requester`. Checks, in order:
   * the number exists, the timestamp matches, the requester is the author.
   */
  async remove(number: number, time: number, requester: string): Promise<NumberedMessage> {
    const message = this.#checked(number, time, requester, "delete");
    this.#messages.splice(number - 1, 1);
    await this.#rewrite();
    return { ...message, number, time: truncateToSecond(this.#clock.now()) };
  }

  /** Replaces the text of message `number`; same checks as `remove`. */
  async edit(
    number: number,
    time: number,
    requester: string,
    text: string,
  ): Promise<NumberedMessage> {
    const message = this.#checked(number, time, requester, "edit");
    message.text = text;
    message.time = truncateToSecond(this.#clock.now());
    message.edited = true;
    await this.#rewrite();
    return { ...message, number };
  }

  /** Every message whose current timestamp is strictly later than `time`, oldest first. */
  since(time: number): NumberedMessage[] {
    return this.#messages
      .map((message, index) => ({ ...message, number: index + 1 }))
      .filter((message) => message.time > time)
      .sort((a, b) => a.time - b.time || a.number - b.number);
  }

  #checked(number: number, time: number, requester: string, verb: string): BoardMessage {
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
