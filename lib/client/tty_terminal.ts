/**
 * The terminal for a real terminal (node:readline, history, no-echo passwords, events printed
 * above the line being typed). It is given its streams; it never reaches for the process's own.
 */
import * as readline from "node:readline";
import type { Readable, Writable } from "node:stream";
import { displaySafe } from "../shared/display.ts";
import type { LineKind, StatusRender, Terminal } from "./terminal.ts";

const STYLES: Partial<Record<LineKind, string>> = {
  error: "\x1b[31m",
  message: "\x1b[36m",
  broadcast: "\x1b[36m",
  private: "\x1b[36m",
  presence: "\x1b[36m",
  notice: "\x1b[36m",
};

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
  readonly #statusLines = new Map<string, StatusRender>();

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

  status(key: string, render: StatusRender | null): void {
    if (render) this.#statusLines.set(key, render);
    else this.#statusLines.delete(key);
    const columns = (this.#output as { columns?: number }).columns ?? 80;
    const text = [...this.#statusLines.values()].map((line) => line(columns)).join("  |  ");
    if (this.#statusLines.size === 0 || this.#muted || this.#closed) {
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

  print(line: string, kind?: LineKind): void {
    // A printed line goes below the status line, which then stays as it was last drawn.
    this.#statusShown = false;
    const safe = displaySafe(line);
    const style = kind && this.#colour ? STYLES[kind] : undefined;
    const text = style ? `${style}${safe}\x1b[0m` : safe;
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
