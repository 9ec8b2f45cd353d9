/**
 * A terminal in the test process: what a TtyTerminal writes is fed to a real terminal emulator
 * (xterm.js, headless), and the screen and scrollback are read back as text, as a person would
 * see them. It is also the TtyTerminal's device: typed bytes, raw mode, size and signals.
 *
 *     await using vt = new VirtualTerminal({ columns: 80, rows: 24 });
 *     const terminal = new TtyTerminal(vt.device, { colour: false });
 *     await vt.type("hello\r");
 *     assert.deepEqual(await vt.lines(), [...]);
 */
import xterm from "@xterm/headless";
import { Unicode11Addon } from "@xterm/addon-unicode11";
import type { TtyDevice } from "../lib/client/tty_terminal.ts";

type Signal = "SIGWINCH" | "SIGCONT";

/** Where the cursor is on the visible screen (0-based). */
export interface CursorPosition {
  row: number;
  column: number;
}

/**
 * An 80×24 (or any size) terminal emulator with a long scrollback, and the device a TtyTerminal
 * runs on. Disposing it ends the input and frees the emulator.
 */
export class VirtualTerminal implements AsyncDisposable {
  /** For `new TtyTerminal(vt.device, ...)`. */
  readonly device: TtyDevice;
  /** Everything written to the terminal, as text (escape sequences included). */
  output = "";
  /** Whether the terminal is in raw mode now. */
  raw = false;
  /** How many times the program asked to be stopped (Ctrl+Z). */
  suspensions = 0;
  readonly #term: InstanceType<typeof xterm.Terminal>;
  readonly #handlers = new Map<Signal, Set<() => void>>();
  readonly #chunks: Uint8Array[] = [];
  #written: Promise<void> = Promise.resolve();
  /** The reader waiting for a chunk. */
  #wake: (() => void) | undefined;
  /** Callers of `type` waiting until their bytes are processed. */
  #consumed: Array<() => void> = [];
  #ended = false;

  constructor(size: { columns: number; rows: number }) {
    this.#term = new xterm.Terminal({
      cols: size.columns,
      rows: size.rows,
      scrollback: 10_000,
      allowProposedApi: true,
    });
    // Wide characters (CJK, emoji) as two columns, as text_width.ts counts them.
    this.#term.loadAddon(new Unicode11Addon());
    this.#term.unicode.activeVersion = "11";
    this.device = {
      input: { [Symbol.asyncIterator]: () => this.#iterator() },
      write: (text) => {
        this.output += text;
        this.#written = this.#written.then(
          () => new Promise<void>((resolve) => this.#term.write(text, resolve)),
        );
      },
      size: () => ({ columns: this.#term.cols, rows: this.#term.rows }),
      setRaw: (raw) => this.raw = raw,
      onSignal: (signal, handler) => {
        const set = this.#handlers.get(signal) ?? new Set();
        set.add(handler);
        this.#handlers.set(signal, set);
        return () => set.delete(handler);
      },
      suspend: () => this.suspensions++,
    };
  }

  #iterator(): AsyncIterator<Uint8Array> {
    return {
      next: async () => {
        while (this.#chunks.length === 0) {
          // Asked for more with nothing left: everything typed so far has been handled.
          const consumed = this.#consumed;
          this.#consumed = [];
          for (const done of consumed) done();
          if (this.#ended) return { done: true, value: undefined };
          await new Promise<void>((resolve) => this.#wake = resolve);
        }
        return { done: false, value: this.#chunks.shift()! };
      },
      return: () => {
        this.#end();
        return Promise.resolve({ done: true, value: undefined });
      },
    };
  }

  #end(): void {
    this.#ended = true;
    const consumed = this.#consumed;
    this.#consumed = [];
    for (const done of consumed) done();
    this.#wake?.();
  }

  /**
   * Types `keys` (one read's worth of bytes, as a terminal sends them) and waits until the
   * program has handled them and its output has reached the screen.
   */
  async type(keys: string | Uint8Array): Promise<void> {
    const bytes = typeof keys === "string" ? new TextEncoder().encode(keys) : keys;
    const handled = new Promise<void>((resolve) => this.#consumed.push(resolve));
    this.#chunks.push(bytes);
    this.#wake?.();
    if (this.#ended) this.#end();
    await handled;
    await this.settled();
  }

  /** Ends the input (the terminal hung up). */
  endInput(): void {
    this.#end();
  }

  /** Changes the size as a window manager would, then tells the program (SIGWINCH). */
  async resize(columns: number, rows: number): Promise<void> {
    await this.settled();
    this.#term.resize(columns, rows);
    this.signal("SIGWINCH");
    await this.settled();
  }

  /** Delivers `signal` to the program's handlers. */
  signal(signal: Signal): void {
    for (const handler of [...(this.#handlers.get(signal) ?? [])]) handler();
  }

  /** How many handlers are registered for `signal` (a closed terminal leaves none). */
  listeners(signal: Signal): number {
    return this.#handlers.get(signal)?.size ?? 0;
  }

  /** Waits until everything written so far has been drawn. */
  async settled(): Promise<void> {
    let last;
    do {
      last = this.#written;
      await last;
    } while (last !== this.#written);
  }

  /** Every row of scrollback and screen, top to bottom, without trailing blank rows. */
  async rows(): Promise<string[]> {
    await this.settled();
    const buffer = this.#term.buffer.active;
    const rows: string[] = [];
    for (let i = 0; i < buffer.length; i++) {
      rows.push(buffer.getLine(i)?.translateToString(true) ?? "");
    }
    while (rows.length > 0 && rows.at(-1) === "") rows.pop();
    return rows;
  }

  /**
   * The text of scrollback and screen as lines: rows the terminal wrapped are joined back into
   * the line they came from; trailing blank rows are dropped.
   */
  async lines(): Promise<string[]> {
    await this.settled();
    const buffer = this.#term.buffer.active;
    const lines: string[] = [];
    for (let i = 0; i < buffer.length; i++) {
      const line = buffer.getLine(i)!;
      if (line.isWrapped && lines.length > 0) lines[lines.length - 1] += rowText(line);
      else lines.push(rowText(line));
    }
    const trimmed = lines.map((line) => line.trimEnd());
    while (trimmed.length > 0 && trimmed.at(-1) === "") trimmed.pop();
    return trimmed;
  }

  /** The visible rows only (as many as the terminal is high), trailing blanks kept as "". */
  async screen(): Promise<string[]> {
    await this.settled();
    const buffer = this.#term.buffer.active;
    const rows: string[] = [];
    for (let i = 0; i < this.#term.rows; i++) {
      rows.push(buffer.getLine(buffer.viewportY + i)?.translateToString(true) ?? "");
    }
    return rows;
  }

  /**
   * Scrollback and screen for a failure message: one row per line, `|` where the screen starts,
   * `+` on rows the terminal wrapped, `>` on the cursor's row.
   */
  async picture(): Promise<string> {
    await this.settled();
    const buffer = this.#term.buffer.active;
    const rows: string[] = [];
    for (let i = 0; i < buffer.length; i++) {
      const line = buffer.getLine(i)!;
      const marks = (i === buffer.baseY + buffer.cursorY ? ">" : " ") +
        (i === buffer.baseY ? "|" : " ") + (line.isWrapped ? "+" : " ");
      rows.push(marks + line.translateToString(true));
    }
    return rows.join("\n");
  }

  /**
   * Where cells in reverse video are on the visible screen: TtyTerminal draws the editing
   * position that way (the terminal's own cursor is hidden).
   */
  async reversed(): Promise<CursorPosition[]> {
    await this.settled();
    const buffer = this.#term.buffer.active;
    const found: CursorPosition[] = [];
    for (let row = 0; row < this.#term.rows; row++) {
      const line = buffer.getLine(buffer.viewportY + row);
      for (let column = 0; line && column < line.length; column++) {
        if (line.getCell(column)?.isInverse()) found.push({ row, column });
      }
    }
    return found;
  }

  /** Where the cursor is on the visible screen. */
  async cursor(): Promise<CursorPosition> {
    await this.settled();
    const buffer = this.#term.buffer.active;
    return { row: buffer.cursorY, column: buffer.cursorX };
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.#end();
    await this.settled();
    this.#term.dispose();
  }
}

type BufferLine = NonNullable<
  ReturnType<InstanceType<typeof xterm.Terminal>["buffer"]["active"]["getLine"]>
>;

/**
 * A row's text up to its last written cell: empty cells inside it read as spaces, empty cells
 * after it (such as the one a wide character that did not fit leaves) are not text.
 */
function rowText(line: BufferLine): string {
  let text = "";
  let gap = "";
  for (let x = 0; x < line.length; x++) {
    const cell = line.getCell(x)!;
    if (cell.getWidth() === 0) continue;
    const chars = cell.getChars();
    if (chars === "") {
      gap += " ";
    } else {
      text += gap + chars;
      gap = "";
    }
  }
  return text;
}
