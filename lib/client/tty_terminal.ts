/**
 * The terminal for a real terminal: raw-mode input read key by key (lib/client/keys.ts), a line
 * editor with history, kill/yank and Tab completion (lib/client/line_editor.ts), and a screen
 * (lib/client/screen.ts) that prints every line above the status lines and the input area and
 * redraws those below it, so nothing printed is ever erased or lost. It is given its device
 * (input bytes, an output writer, the size, the raw-mode switch, signals); it never reaches for
 * the process's own.
 */
import { displaySafe } from "../shared/display.ts";
import { type Key, KeyParser } from "./keys.ts";
import { LineEditor } from "./line_editor.ts";
import { type LiveArea, Screen, type Size } from "./screen.ts";
import type { Completer, LineKind, StatusRender, Terminal } from "./terminal.ts";
import { textWidth } from "./text_width.ts";

/** What TtyTerminal needs of a terminal device; the entry point passes Deno's stdin and stdout. */
export interface TtyDevice {
  /** The bytes typed, as they arrive. */
  input: AsyncIterable<Uint8Array>;
  /** Writes to the terminal, completely, before returning. */
  write(text: string): void;
  /** The terminal's size now. */
  size(): Size;
  /** Switches the terminal to raw mode (keys one by one, no echo, no signals) and back. */
  setRaw(raw: boolean): void;
  /** Calls `handler` on each `signal`; returns what stops that. */
  onSignal(signal: "SIGWINCH" | "SIGCONT", handler: () => void): () => void;
  /** Stops this process as the shell's Ctrl+Z would (SIGTSTP), until SIGCONT. */
  suspend(): void;
}

/** Options for TtyTerminal. */
export interface TtyOptions {
  /** Colours (off when NO_COLOR is set); markers and times show either way. */
  colour?: boolean;
  /** A bell on an incoming direct or private message, and when Tab finds nothing. */
  bell?: boolean;
  /** Lines kept for ↑/↓. */
  historySize?: number;
  /** The local time shown on incoming lines; tests pass a fixed one. */
  now?: () => Date;
}

/** How a line of each kind is shown: a marker, an SGR colour, a time, a bell. */
interface LineStyle {
  marker?: string;
  sgr?: string;
  timed?: boolean;
  bell?: boolean;
}

/**
 * Lines that arrive unasked carry the local time and a marker, so direct messages (»),
 * broadcasts (*), private messages (⇄) and notices (-!-) are told apart without colour.
 */
const LINE_STYLES: Record<LineKind, LineStyle> = {
  reply: {},
  error: { sgr: "31" },
  message: { marker: "»", sgr: "1;36", timed: true, bell: true },
  broadcast: { marker: "*", sgr: "33", timed: true },
  private: { marker: "⇄", sgr: "1;35", timed: true, bell: true },
  presence: { marker: "-!-", sgr: "32", timed: true },
  notice: { marker: "-!-", sgr: "94", timed: true },
  own: { sgr: "2" },
};

/** Prompts wider than this are printed as an output line; the input area then shows `> `. */
const INLINE_PROMPT_MAX = 24;
const SHORT_PROMPT = "> ";
const DIM = "2";
const BELL = "\x07";
const PASTE_ON = "\x1b[?2004h";
const PASTE_OFF = "\x1b[?2004l";
const SHOW_CURSOR = "\x1b[?25h";

interface Reading {
  resolve: (line: string | null) => void;
  /** The prompt shown in the input area. */
  prompt: string;
  secret: boolean;
}

/**
 * For a real terminal: line editing and history, passwords without echo, incoming lines with
 * time, marker and colour printed above the input area, status lines between them, Tab
 * completion, and the keys of a shell (Ctrl+C, Ctrl+D, Ctrl+Z, Ctrl+L).
 */
export class TtyTerminal implements Terminal {
  readonly interactive = true;
  readonly #device: TtyDevice;
  readonly #colour: boolean;
  readonly #bell: boolean;
  readonly #now: () => Date;
  readonly #keys = new KeyParser();
  readonly #editor: LineEditor;
  readonly #screen: Screen;
  readonly #status = new Map<string, StatusRender>();
  readonly #typedAhead: Array<string | null> = [];
  readonly #stopSignals: Array<() => void>;
  readonly #input: AsyncIterator<Uint8Array>;
  #completer: Completer | undefined;
  #reading: Reading | undefined;
  /** Whether the last read hid its text; text typed ahead stays hidden until the next read. */
  #lastSecret = false;
  /** The long prompt printed last, while nothing has been printed after it. */
  #promptShown: string | undefined;
  #tabs = 0;
  #suspended = false;
  #closed = false;

  constructor(device: TtyDevice, options: TtyOptions = {}) {
    this.#device = device;
    this.#colour = options.colour ?? true;
    this.#bell = options.bell ?? true;
    this.#now = options.now ?? (() => new Date());
    this.#editor = new LineEditor({ historySize: options.historySize ?? 200 });
    this.#screen = new Screen(device.size());
    device.setRaw(true);
    device.write(PASTE_ON);
    this.#stopSignals = [
      device.onSignal("SIGWINCH", () => this.#resized()),
      device.onSignal("SIGCONT", () => this.#continued()),
    ];
    this.#input = device.input[Symbol.asyncIterator]();
    this.#readKeys();
  }

  readLine(prompt: string): Promise<string | null> {
    return this.#read(prompt, false);
  }

  readSecret(prompt: string): Promise<string | null> {
    return this.#read(prompt, true);
  }

  print(line: string, kind: LineKind = "reply"): void {
    const style = LINE_STYLES[kind];
    const time = style.timed ? `[${clock(this.#now())}] ` : "";
    const text = (style.marker ? `${style.marker} ` : "") + displaySafe(line);
    const shown = this.#colour
      ? (time ? sgr(DIM, time.trimEnd()) + " " : "") + (style.sgr ? sgr(style.sgr, text) : text)
      : time + text;
    this.#show([shown], style.bell === true);
  }

  status(key: string, render: StatusRender | null): void {
    if (render) this.#status.set(key, render);
    else this.#status.delete(key);
    this.#show([]);
  }

  setCompleter(completer: Completer): void {
    this.#completer = completer;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    const reading = this.#reading;
    this.#reading = undefined;
    // The input area goes; the cursor is then at the start of the line after the last output.
    this.#device.write(this.#screen.erase() + PASTE_OFF + SHOW_CURSOR);
    for (const stop of this.#stopSignals) stop();
    try {
      this.#device.setRaw(false);
    } catch {
      // The terminal is gone; nothing to restore.
    }
    this.#input.return?.().catch(() => {});
    reading?.resolve(null);
  }

  #read(prompt: string, secret: boolean): Promise<string | null> {
    if (this.#closed) return Promise.resolve(null);
    const shown = this.#inputPrompt(prompt);
    this.#lastSecret = secret;
    if (this.#typedAhead.length > 0) {
      const line = this.#typedAhead.shift()!;
      if (line !== null) this.#accept(line, { prompt: shown, secret });
      return Promise.resolve(line);
    }
    return new Promise((resolve) => {
      this.#reading = { resolve, prompt: shown, secret };
      this.#show([]);
    });
  }

  /**
   * The prompt for the input area. A long one (the command prompt) is printed as a dim output
   * line instead, once until something else is printed, and the input area shows `> `.
   */
  #inputPrompt(prompt: string): string {
    if (textWidth(prompt) <= INLINE_PROMPT_MAX) return prompt.endsWith(" ") ? prompt : prompt + " ";
    if (this.#promptShown !== prompt) {
      this.#show([this.#colour ? sgr(DIM, displaySafe(prompt)) : displaySafe(prompt)]);
      this.#promptShown = prompt;
    }
    return SHORT_PROMPT;
  }

  /** Hands a line to its read: it stays in the output as typed (a secret as its prompt alone). */
  #accept(line: string, reading: Omit<Reading, "resolve">): void {
    if (reading.secret) this.#show([displaySafe(reading.prompt.trimEnd())]);
    else if (line !== "") this.#show([displaySafe(reading.prompt + line)]);
    if (!reading.secret) this.#editor.remember(line);
  }

  /** Prints `lines` above the live area and redraws it (a bell after them if asked). */
  #show(lines: string[], ring = false): void {
    if (lines.length > 0) this.#promptShown = undefined;
    const bell = ring && this.#bell ? BELL : "";
    if (this.#closed || this.#suspended) {
      // No live area to keep: plain lines (nothing at all for a status change).
      const text = lines.map((line) => line + "\r\n").join("") + bell;
      if (text) this.#device.write(text);
      return;
    }
    this.#device.write(this.#screen.draw(this.#liveArea(), lines) + bell);
  }

  #liveArea(): LiveArea {
    const columns = this.#screen.size.columns;
    const reading = this.#reading;
    return {
      // A status that renders nothing takes no row.
      status: [...this.#status.values()].map((render) => render(columns)).filter(Boolean),
      prompt: reading?.prompt ?? "",
      text: this.#editor.text,
      cursor: this.#editor.cursor,
      secret: reading?.secret ?? this.#lastSecret,
      showCursor: reading !== undefined || this.#editor.text !== "",
    };
  }

  async #readKeys(): Promise<void> {
    try {
      while (!this.#closed) {
        const next = await this.#input.next();
        if (next.done || this.#closed) break;
        for (const key of this.#keys.feed(next.value)) {
          if (this.#closed) break;
          await this.#press(key);
        }
        this.#show([]);
      }
    } catch {
      // The terminal went away: that is the end of input.
    }
    if (!this.#closed) this.#deliver(null);
  }

  async #press(key: Key): Promise<void> {
    this.#tabs = key.name === "tab" ? this.#tabs + 1 : 0;
    switch (key.name) {
      case "enter":
        return this.#deliver(this.#editor.take());
      case "tab":
        return await this.#complete();
      case "ctrl-c":
        // As in a shell: a typed line is dropped; on an empty line, input ends.
        if (this.#editor.text !== "") return this.#editor.clear();
        return this.#deliver(null);
      case "ctrl-d":
        if (this.#editor.text !== "") return this.#editor.deleteForward();
        return this.#deliver(null);
      case "ctrl-z":
        return this.#suspend();
      case "ctrl-l":
        return this.#show([]);
      default:
        this.#editor.apply(key);
    }
  }

  /** A line (or, with null, the end of input) for the pending read, or for the next one. */
  #deliver(line: string | null): void {
    const reading = this.#reading;
    if (!reading) {
      this.#typedAhead.push(line);
      return;
    }
    this.#reading = undefined;
    if (line !== null) this.#accept(line, reading);
    reading.resolve(line);
  }

  async #complete(): Promise<void> {
    const completer = this.#completer;
    if (!completer || (this.#reading?.secret ?? this.#lastSecret)) return this.#ring();
    const { text, cursor } = this.#editor;
    let completion;
    try {
      completion = await completer(text, cursor);
    } catch {
      return this.#ring();
    }
    // The line may have changed while the completer looked (it never does while keys wait).
    if (this.#closed || this.#editor.text !== text || this.#editor.cursor !== cursor) return;
    const result = this.#editor.complete(completion, this.#tabs > 1);
    if (result.done === "list") this.#show([result.candidates.join("  ")].map(displaySafe));
    else if (result.done === "nothing") this.#ring();
  }

  #ring(): void {
    if (this.#bell) this.#device.write(BELL);
  }

  /** Ctrl+Z: the terminal back to how the shell wants it, then stop until SIGCONT. */
  #suspend(): void {
    this.#device.write(this.#screen.erase() + PASTE_OFF + SHOW_CURSOR);
    this.#device.setRaw(false);
    this.#suspended = true;
    this.#device.suspend();
  }

  #continued(): void {
    if (this.#closed) return;
    this.#device.setRaw(true);
    this.#device.write(PASTE_ON);
    this.#suspended = false;
    this.#screen.resize(this.#device.size());
    this.#show([]);
  }

  #resized(): void {
    if (this.#closed) return;
    this.#screen.resize(this.#device.size());
    this.#show([]);
  }
}

function sgr(code: string, text: string): string {
  return `\x1b[${code}m${text}\x1b[0m`;
}

/** `14:02`, local time. */
function clock(date: Date): string {
  const two = (n: number) => String(n).padStart(2, "0");
  return `${two(date.getHours())}:${two(date.getMinutes())}`;
}
