/**
 * The terminal for pipes and files: reads lines in order, prints plain lines (no ANSI), and ends
 * each prompt with a newline so every output line stands alone. Output is the spec's texts byte
 * for byte, with untrusted characters made visible.
 */
import { displaySafe } from "../shared/display.ts";
import { readLines } from "../shared/lines.ts";
import type { Terminal } from "./terminal.ts";

/** Writes text to an output; the entry point passes stdout. */
export type WriteText = (text: string) => void;

/**
 * For pipes and files: reads lines in order, prints plain lines (no ANSI), and ends each
 * prompt with a newline so every output line stands alone.
 */
export class PlainTerminal implements Terminal {
  readonly interactive = false;
  readonly #write: WriteText;
  readonly #lines: AsyncIterator<string>;
  readonly #interrupted: Promise<null>;
  #interrupt!: () => void;
  #closed = false;

  constructor(input: ReadableStream<Uint8Array>, write: WriteText) {
    this.#write = write;
    this.#lines = readLines(input);
    this.#interrupted = new Promise((resolve) => this.#interrupt = () => resolve(null));
  }

  /** Ends input as if it had reached its end (Ctrl+C): the pending read returns null. */
  interrupt(): void {
    this.#interrupt();
  }

  async readLine(prompt: string): Promise<string | null> {
    if (this.#closed) return null;
    // The prompt exactly as a terminal would show it, then a newline so output stays line-based.
    this.#write(prompt + "\n");
    const next = await Promise.race([this.#lines.next(), this.#interrupted]);
    return next === null || next.done ? null : next.value;
  }

  readSecret(prompt: string): Promise<string | null> {
    return this.readLine(prompt);
  }

  print(line: string): void {
    this.#write(displaySafe(line) + "\n");
  }

  /** Pipes get no status line; progress is printed as a few plain lines instead. */
  status(): void {}

  close(): void {
    this.#closed = true;
  }
}
