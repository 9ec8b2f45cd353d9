/**
 * The line being typed, as pure state: its text and cursor, history, the kill buffer and Tab
 * completion. It knows keys by name and nothing about screens or streams, so it is tested
 * with plain calls.
 */
import type { Key, KeyName } from "./keys.ts";
import type { Completion } from "./terminal.ts";

/** What a Tab completion did to the line. */
export type CompletionResult =
  /** The word was replaced (one candidate) or extended (their common prefix). */
  | { done: "completed" }
  /** Nothing to add; `candidates` are worth listing (a repeated Tab with several). */
  | { done: "list"; candidates: string[] }
  /** No candidate, or several sharing nothing more than what is typed. */
  | { done: "nothing" };

/** Editing keys and what they do to the line. */
const EDITS: Partial<Record<KeyName, (editor: LineEditor) => void>> = {
  backspace: (e) => e.deleteBack(),
  delete: (e) => e.deleteForward(),
  left: (e) => e.moveTo(e.graphemeBefore()),
  "ctrl-b": (e) => e.moveTo(e.graphemeBefore()),
  right: (e) => e.moveTo(e.graphemeAfter()),
  "ctrl-f": (e) => e.moveTo(e.graphemeAfter()),
  home: (e) => e.moveTo(0),
  "ctrl-a": (e) => e.moveTo(0),
  end: (e) => e.moveTo(e.text.length),
  "ctrl-e": (e) => e.moveTo(e.text.length),
  "word-left": (e) => e.moveTo(e.wordStart()),
  "word-right": (e) => e.moveTo(e.wordEnd()),
  "ctrl-k": (e) => e.kill(e.cursor, e.text.length),
  "ctrl-u": (e) => e.kill(0, e.cursor),
  "ctrl-w": (e) => e.kill(e.spaceWordStart(), e.cursor),
  "alt-backspace": (e) => e.kill(e.wordStart(), e.cursor),
  "alt-d": (e) => e.kill(e.cursor, e.wordEnd()),
  "ctrl-y": (e) => e.insert(e.killed),
  up: (e) => e.historyBack(),
  "ctrl-p": (e) => e.historyBack(),
  down: (e) => e.historyForward(),
  "ctrl-n": (e) => e.historyForward(),
};

const graphemes = new Intl.Segmenter(undefined, { granularity: "grapheme" });

/**
 * One line of input being edited (`text`, `cursor` as a string index on a character boundary),
 * with shell-like history (↑/↓ keep the line being typed as a draft), kill and yank (Ctrl+K,
 * Ctrl+U, Ctrl+W, Ctrl+Y) and Tab completion.
 */
export class LineEditor {
  text = "";
  cursor = 0;
  /** The text last killed (Ctrl+K, Ctrl+U, Ctrl+W), for Ctrl+Y. */
  killed = "";
  readonly #historySize: number;
  readonly #history: string[] = [];
  /** Where ↑/↓ are in the history: its length means the line being typed. */
  #historyAt = 0;
  #draft = "";

  constructor(options: { historySize?: number } = {}) {
    this.#historySize = options.historySize ?? 200;
  }

  /** The lines remembered, oldest first. */
  get history(): readonly string[] {
    return this.#history;
  }

  /** Applies an editing key; returns false for keys that are not editing keys. */
  apply(key: Key): boolean {
    if (key.name === "text" || key.name === "paste") {
      this.insert(key.text);
      return true;
    }
    const edit = EDITS[key.name];
    if (!edit) return false;
    edit(this);
    return true;
  }

  /** Inserts `text` at the cursor. */
  insert(text: string): void {
    this.text = this.text.slice(0, this.cursor) + text + this.text.slice(this.cursor);
    this.cursor += text.length;
  }

  /** Removes the character (grapheme) before the cursor. */
  deleteBack(): void {
    const start = this.graphemeBefore();
    this.text = this.text.slice(0, start) + this.text.slice(this.cursor);
    this.cursor = start;
  }

  /** Removes the character (grapheme) under the cursor. */
  deleteForward(): void {
    this.text = this.text.slice(0, this.cursor) + this.text.slice(this.graphemeAfter());
  }

  moveTo(position: number): void {
    this.cursor = Math.max(0, Math.min(this.text.length, position));
  }

  /** Cuts `text[from, to)` into the kill buffer (when not empty) and leaves the cursor at `from`. */
  kill(from: number, to: number): void {
    if (to <= from) return;
    this.killed = this.text.slice(from, to);
    this.text = this.text.slice(0, from) + this.text.slice(to);
    this.cursor = from;
  }

  /** Where the grapheme before the cursor starts. */
  graphemeBefore(): number {
    let start = 0;
    for (const { index } of graphemes.segment(this.text)) {
      if (index >= this.cursor) break;
      start = index;
    }
    return start;
  }

  /** Where the grapheme under the cursor ends. */
  graphemeAfter(): number {
    for (const { index, segment } of graphemes.segment(this.text)) {
      if (index + segment.length > this.cursor) return index + segment.length;
    }
    return this.text.length;
  }

  /** The start of the word before the cursor (words are letters and digits). */
  wordStart(): number {
    let i = this.cursor;
    while (i > 0 && !isWordChar(this.text[i - 1]!)) i--;
    while (i > 0 && isWordChar(this.text[i - 1]!)) i--;
    return i;
  }

  /** The end of the word after the cursor. */
  wordEnd(): number {
    let i = this.cursor;
    while (i < this.text.length && !isWordChar(this.text[i]!)) i++;
    while (i < this.text.length && isWordChar(this.text[i]!)) i++;
    return i;
  }

  /** The start of the space-separated word before the cursor (what Ctrl+W removes). */
  spaceWordStart(): number {
    let i = this.cursor;
    while (i > 0 && this.text[i - 1] === " ") i--;
    while (i > 0 && this.text[i - 1] !== " ") i--;
    return i;
  }

  /** ↑: the previous history line, keeping what was being typed as the draft. */
  historyBack(): void {
    if (this.#historyAt === 0) return;
    if (this.#historyAt === this.#history.length) this.#draft = this.text;
    this.#historyAt--;
    this.#show(this.#history[this.#historyAt]!);
  }

  /** ↓: the next history line, and after the last one the draft again. */
  historyForward(): void {
    if (this.#historyAt >= this.#history.length) return;
    this.#historyAt++;
    this.#show(
      this.#historyAt === this.#history.length ? this.#draft : this.#history[this.#historyAt]!,
    );
  }

  #show(text: string): void {
    this.text = text;
    this.cursor = text.length;
  }

  /** Adds a line to the history (not an empty line, nor a repeat of the last one). */
  remember(line: string): void {
    if (line.trim() === "" || this.#history.at(-1) === line) return;
    this.#history.push(line);
    if (this.#history.length > this.#historySize) this.#history.shift();
    this.#historyAt = this.#history.length;
  }

  /** Takes the line (Enter): returns its text and starts an empty one. */
  take(): string {
    const line = this.text;
    this.clear();
    return line;
  }

  /** Empties the line and leaves history browsing (Ctrl+C). */
  clear(): void {
    this.text = "";
    this.cursor = 0;
    this.#draft = "";
    this.#historyAt = this.#history.length;
  }

  /**
   * Applies what a completer offered for the word from `completion.from` to the cursor: one
   * candidate replaces it (with a space after, unless it ends with `/`); several extend it to
   * their longest common prefix; `repeated` (a second Tab in a row) asks to list them.
   */
  complete(completion: Completion, repeated: boolean): CompletionResult {
    const { candidates } = completion;
    const from = Math.max(0, Math.min(this.cursor, completion.from));
    const typed = this.text.slice(from, this.cursor);
    if (candidates.length === 1) {
      const word = candidates[0]!;
      this.#replace(from, word.endsWith("/") ? word : word + " ");
      return { done: "completed" };
    }
    const prefix = commonPrefix(candidates);
    if (candidates.length > 1 && prefix.length > typed.length && prefix.startsWith(typed)) {
      this.#replace(from, prefix);
      return { done: "completed" };
    }
    if (candidates.length > 1 && repeated) return { done: "list", candidates };
    return { done: "nothing" };
  }

  #replace(from: number, word: string): void {
    this.text = this.text.slice(0, from) + word + this.text.slice(this.cursor);
    this.cursor = from + word.length;
  }
}

function isWordChar(char: string): boolean {
  return /[\p{L}\p{N}_]/u.test(char);
}

/** The longest prefix all `words` share, on character boundaries. */
export function commonPrefix(words: readonly string[]): string {
  if (words.length === 0) return "";
  let prefix = [...words[0]!];
  for (const word of words.slice(1)) {
    const chars = [...word];
    let n = 0;
    while (n < prefix.length && n < chars.length && prefix[n] === chars[n]) n++;
    prefix = prefix.slice(0, n);
  }
  return prefix.join("");
}
