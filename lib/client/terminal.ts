/**
 * What the client needs from a terminal: reading lines and secrets, printing lines of a kind, a
 * status block under the output, and nothing about how. Two implementations: PlainTerminal for
 * pipes (the spec's texts, byte for byte) and TtyTerminal for a real terminal (line editing, an
 * input area that survives incoming output, colours). Every implementation makes the text it
 * prints safe to show (see lib/shared/display.ts): the client never trusts text from elsewhere.
 */

/**
 * What a printed line is, so a terminal can mark and colour it. Piped output ignores the kind.
 * `reply` is a command's own result, `error` a failure; the rest arrive unasked.
 */
export type LineKind =
  | "reply"
  | "error"
  | "message"
  | "broadcast"
  | "private"
  | "presence"
  | "notice"
  | "own";

/** Draws one status line for a terminal `columns` wide (the terminal still cuts what overflows). */
export type StatusRender = (columns: number) => string;

/** The candidates for the word that ends at the cursor, which starts at `from`. */
export interface Completion {
  from: number;
  candidates: string[];
}

/** Completes the word before the cursor in `line` (Tab). */
export type Completer = (line: string, cursor: number) => Promise<Completion> | Completion;

/** What the client needs from a terminal. */
export interface Terminal {
  /** Whether this is a real terminal (line editing, status lines) rather than a pipe. */
  readonly interactive: boolean;
  /** Shows `prompt` and reads a line; null at end of input. */
  readLine(prompt: string): Promise<string | null>;
  /** Like readLine, without echo on a real terminal. */
  readSecret(prompt: string): Promise<string | null>;
  /** Prints a line above whatever the user is typing, made safe to show. */
  print(line: string, kind?: LineKind): void;
  /**
   * Sets (or, with null, removes) the status line `key` in the block shown between the output and
   * the input area, such as one progress bar per transfer. Pipes show no status lines.
   */
  status(key: string, render: StatusRender | null): void;
  /** Gives a terminal with line editing what Tab completes; pipes ignore it. */
  setCompleter?(completer: Completer): void;
  /** Stops reading input (pending reads resolve null). */
  close(): void;
}
