/**
 * The terminal screen as the client draws it, as pure state: output lines scroll up above a
 * live area at the bottom (the status lines, then the prompt and the text being typed, wrapped
 * over as many rows as it needs). It returns the bytes to write and remembers what the live
 * area covers, so the next redraw erases exactly that and never a printed line.
 *
 * Rows of the live area are ended by explicit line breaks, never by the terminal's own
 * wrapping, so their count is known; printed lines are left to the terminal to wrap (and to
 * reflow on resize), since they are never erased.
 *
 * The terminal's own cursor is hidden and parked at the start of the live area's last row, and
 * the editing position is drawn as a reverse-video cell. That is what makes a resize safe:
 * terminals disagree on how they reflow the cursor's own line (xterm.js leaves it alone, tmux
 * rewraps it) and xterm.js moves the cursor down for every line it rewraps even below it, but
 * with the cursor at column 0 of the last row both rewrap exactly the rows above it and leave
 * the cursor at the start of the last row, so the rows to erase are known. One limit no program
 * can get round: rows that a resize pushes off the top of the screen cannot be erased, so the
 * live area is kept within half the screen.
 */
import { displaySafe } from "../shared/display.ts";
import { charWidth, fitWidth } from "./text_width.ts";

/** A terminal's size in character cells. */
export interface Size {
  columns: number;
  rows: number;
}

/** What the live area shows. */
export interface LiveArea {
  /** Status lines, top to bottom; each is made safe and cut to the width. */
  status: string[];
  /** Shown before the text (made safe). */
  prompt: string;
  text: string;
  /** Cursor position in `text` (a string index). */
  cursor: number;
  /** Hides the text (passwords): only the prompt shows, the cursor after it. */
  secret?: boolean;
  /** Whether to show the editing position (false while no line is being read or typed). */
  showCursor?: boolean;
}

/** The input area laid out on rows of a given width. */
export interface InputLayout {
  rows: string[];
  cursorRow: number;
  cursorColumn: number;
}

interface Cell {
  char: string;
  width: number;
}

interface Laid {
  rows: Cell[][];
  cursorRow: number;
  cursorColumn: number;
}

const CSI = "\x1b[";
const HIDE_CURSOR = `${CSI}?25l`;
const ERASE_BELOW = `${CSI}J`;
const REVERSE = `${CSI}7m`;
const NO_REVERSE = `${CSI}27m`;

function cells(text: string): Cell[] {
  const out: Cell[] = [];
  for (const char of text) out.push({ char, width: charWidth(char.codePointAt(0)!) });
  return out;
}

function rowText(row: readonly Cell[]): string {
  return row.map((cell) => cell.char).join("");
}

/**
 * Lays cells out as a terminal would: a character that does not fit starts the next row (a
 * wide one never straddles the edge). Returns the rows and where cell `mark` starts (or, for
 * `mark` past the end, where the next cell would).
 */
function wrap(items: readonly Cell[], columns: number, mark = items.length): Laid {
  const rows: Cell[][] = [[]];
  let row = 0;
  let column = 0;
  let at = { row: 0, column: 0 };
  items.forEach((cell, index) => {
    if (column > 0 && column + cell.width > columns) {
      rows.push([]);
      row++;
      column = 0;
    }
    if (index === mark) at = { row, column };
    rows[row]!.push(cell);
    column += cell.width;
  });
  if (mark >= items.length) at = { row, column };
  return { rows, cursorRow: at.row, cursorColumn: at.column };
}

function laidInput(area: LiveArea, columns: number): Laid {
  const width = Math.max(1, columns);
  const items = cells(displaySafe(area.prompt));
  let mark = items.length;
  if (!area.secret) {
    let index = 0;
    for (const char of area.text) {
      if (index === area.cursor) mark = items.length;
      items.push(...cells(displaySafe(char)));
      index += char.length;
    }
    if (area.cursor >= area.text.length) mark = items.length;
  }
  const laid = wrap(items, width, mark);
  // The cursor after a full row is at the start of the next one (the cursor cell must fit).
  if (laid.cursorColumn >= width) {
    laid.rows.push([]);
    return { rows: laid.rows, cursorRow: laid.cursorRow + 1, cursorColumn: 0 };
  }
  return laid;
}

/**
 * The prompt and text laid out on rows `columns` wide, and where the cursor goes. Characters
 * that could move the cursor or restyle the terminal are shown in a visible form; a wide
 * character never straddles the edge; a cursor after a full row starts a new (empty) row.
 */
export function layoutInput(area: LiveArea, columns: number): InputLayout {
  const laid = laidInput(area, columns);
  return { ...laid, rows: laid.rows.map(rowText) };
}

/** A row with the cell at `column` in reverse video (a reverse space past its end). */
function withCursor(row: readonly Cell[], column: number): { text: string; plain: string } {
  let at = 0;
  let text = "";
  let found = false;
  for (const cell of row) {
    if (at === column && !found && cell.width > 0) {
      text += REVERSE + cell.char + NO_REVERSE;
      found = true;
    } else {
      text += cell.char;
    }
    at += cell.width;
  }
  const plain = rowText(row);
  return found ? { text, plain } : { text: text + REVERSE + " " + NO_REVERSE, plain: plain + " " };
}

/**
 * Draws output lines and the live area. Each method returns the bytes to write; the caller
 * writes them all, in order, and nothing else.
 */
export class Screen {
  #size: Size;
  /** The live area's rows as last drawn (plain text), or undefined when none is drawn. */
  #drawn: string[] | undefined;

  constructor(size: Size) {
    this.#size = normalise(size);
  }

  get size(): Size {
    return this.#size;
  }

  /** How many rows the live area covers now (0 when nothing is drawn). */
  get liveRows(): number {
    return this.#drawn?.length ?? 0;
  }

  /**
   * Erases the live area, prints `lines` (already styled; each ends up on its own line, wrapped
   * by the terminal), and draws `area` below them.
   */
  draw(area: LiveArea, lines: readonly string[] = []): string {
    let out = HIDE_CURSOR + this.erase();
    for (const line of lines) out += line + "\r\n";
    const { columns } = this.#size;
    const input = laidInput(area, columns);
    const status = area.status.map((line) => fitWidth(displaySafe(line), columns));
    // The live area stays within half the screen, so that its top can still be reached to
    // erase it after the terminal narrows to half its width and rewraps it: the input rows
    // around the cursor first, then as many status lines as fit.
    const room = Math.max(1, Math.floor(this.#size.rows / 2));
    const inputRows = Math.min(input.rows.length, room);
    const first = Math.max(
      0,
      Math.min(input.cursorRow - inputRows + 1, input.rows.length - inputRows),
    );
    const shown = input.rows.slice(first, first + inputRows).map((row, index) =>
      area.showCursor && first + index === input.cursorRow
        ? withCursor(row, input.cursorColumn)
        : { text: rowText(row), plain: rowText(row) }
    );
    const shownStatus = status.slice(Math.max(0, status.length - (room - inputRows)));
    const rows = [...shownStatus.map((text) => ({ text, plain: text })), ...shown];
    out += rows.map((row) => row.text).join("\r\n") + "\r";
    this.#drawn = rows.map((row) => row.plain);
    return out;
  }

  /** Erases the live area (the cursor ends where its first row was). */
  erase(): string {
    const drawn = this.#drawn;
    this.#drawn = undefined;
    if (!drawn) return "";
    const up = drawn.length - 1;
    return "\r" + (up > 0 ? `${CSI}${up}A` : "") + ERASE_BELOW;
  }

  /** Forgets the live area without erasing it (the screen was cleared some other way). */
  forget(): void {
    this.#drawn = undefined;
  }

  /**
   * The terminal changed size and has rewrapped the rows above the cursor that no longer fit
   * (see the module comment); the live area is recomputed the same way, so the next erase
   * still covers exactly it.
   */
  resize(size: Size): void {
    const next = normalise(size);
    this.#size = next;
    const drawn = this.#drawn;
    if (!drawn) return;
    const above = drawn.slice(0, -1).flatMap((row) =>
      wrap(cells(row), next.columns).rows.map(rowText)
    );
    this.#drawn = [...above, drawn.at(-1)!];
  }
}

function normalise(size: Size): Size {
  return { columns: Math.max(1, size.columns), rows: Math.max(1, size.rows) };
}
