/**
 * Terminals for the client: a line-editing one for a real terminal (node:readline, history,
 * no-echo passwords, events printed above the line being typed) and a plain one for pipes.
 * They are given their streams; they never reach for the process's own.
 */
import * as readline from "node:readline";
import type { Readable, Writable } from "node:stream";
import type { Terminal } from "./app.ts";
import { readLines } from "../shared/lines.ts";

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
    this.#write(line + "\n");
  }

  /** Pipes get no status line; progress is printed as a few plain lines instead. */
  status(): void {}

  close(): void {
    this.#closed = true;
  }
}

const STYLES = { error: "\x1b[31m", event: "\x1b[36m" } as const;

/**
 * For a real terminal: line editing and history, passwords without echo, Ctrl+C and Ctrl+D
 * log out, and lines printed while the user types appear above the prompt without mangling it.
 */
export class TtyTerminal implements Terminal {
  readonly interactive = true;
  readonly #rl: readline.Interface;
  readonly #output: Writable;
  readonly #colour: boolean;
  #waiting: ((line: string | null) => void) | undefined;
  #typedAhead: Array<string | null> = [];
  #muted = false;
  #closed = false;
  /** Whether the line above the prompt is a status line that the next status may redraw. */
  #statusShown = false;

  constructor(input: Readable, output: Writable, options: { colour: boolean }) {
    this.#output = output;
    this.#colour = options.colour;
    this.#rl = readline.createInterface({ input, output, terminal: true, historySize: 200 });
    // Passwords: readline echoes through this method, so silence it while one is typed.
    const rl = this.#rl as unknown as { _writeToOutput: (text: string) => void };
    const original = rl._writeToOutput.bind(rl);
    rl._writeToOutput = (text: string) => {
      if (!this.#muted) original(text);
    };
    this.#rl.on("line", (line) => this.#deliver(line));
    this.#rl.on("close", () => this.#deliver(null));
    // Ctrl+C behaves like end of input: the client logs out cleanly.
    this.#rl.on("SIGINT", () => {
      this.#output.write("\n");
      this.#deliver(null);
    });
  }

  #deliver(line: string | null): void {
    const waiting = this.#waiting;
    this.#waiting = undefined;
    if (this.#muted) {
      this.#muted = false;
      this.#output.write("\n");
    }
    // Lines typed while the previous command is still running wait their turn.
    if (waiting) waiting(line);
    else this.#typedAhead.push(line);
  }

  readLine(prompt: string): Promise<string | null> {
    if (this.#closed) return Promise.resolve(null);
    if (this.#typedAhead.length > 0) return Promise.resolve(this.#typedAhead.shift()!);
    return new Promise((resolve) => {
      this.#waiting = resolve;
      this.#rl.setPrompt(prompt.endsWith(" ") ? prompt : prompt + " ");
      this.#rl.prompt();
    });
  }

  readSecret(prompt: string): Promise<string | null> {
    if (this.#closed) return Promise.resolve(null);
    if (this.#typedAhead.length > 0) return Promise.resolve(this.#typedAhead.shift()!);
    return new Promise((resolve) => {
      this.#waiting = (line) => {
        // Keep passwords out of the history.
        const history = (this.#rl as unknown as { history?: string[] }).history;
        if (line !== null && history?.[0] === line) history.shift();
        resolve(line);
      };
      this.#rl.setPrompt("");
      this.#output.write(prompt);
      this.#muted = true;
    });
  }

  status(text: string | null): void {
    if (text === null || this.#muted || this.#closed) {
      this.#statusShown = false;
      return;
    }
    // The status line sits just above the prompt; redraw it in place, then the prompt.
    if (this.#statusShown) readline.moveCursor(this.#output, 0, -1);
    readline.cursorTo(this.#output, 0);
    readline.clearLine(this.#output, 0);
    this.#output.write(text + "\n");
    readline.clearLine(this.#output, 0);
    if (this.#waiting) this.#rl.prompt(true);
    this.#statusShown = true;
  }

  print(line: string, style?: "error" | "event"): void {
    // A printed line goes below the status line, which then stays as it was last drawn.
    this.#statusShown = false;
    const text = style && this.#colour ? `${STYLES[style]}${line}\x1b[0m` : line;
    if (this.#waiting && !this.#muted) {
      readline.clearLine(this.#output, 0);
      readline.cursorTo(this.#output, 0);
      this.#output.write(text + "\n");
      this.#rl.prompt(true);
    } else {
      this.#output.write(text + "\n");
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#rl.close();
  }
}
