/**
 * How many terminal columns text takes: wide (CJK, fullwidth) characters and emoji take two,
 * combining marks and invisible format characters none, everything else one. The renderer and
 * the progress lines use it to fit text to the terminal.
 */

// East Asian Wide and Fullwidth ranges, as wcwidth and terminals treat them.
const WIDE: ReadonlyArray<readonly [number, number]> = [
  [0x1100, 0x115f],
  [0x231a, 0x231b],
  [0x2329, 0x232a],
  [0x23e9, 0x23ec],
  [0x23f0, 0x23f0],
  [0x23f3, 0x23f3],
  [0x25fd, 0x25fe],
  [0x2614, 0x2615],
  [0x2648, 0x2653],
  [0x267f, 0x267f],
  [0x2693, 0x2693],
  [0x26a1, 0x26a1],
  [0x26aa, 0x26ab],
  [0x26bd, 0x26be],
  [0x26c4, 0x26c5],
  [0x26ce, 0x26ce],
  [0x26d4, 0x26d4],
  [0x26ea, 0x26ea],
  [0x26f2, 0x26f3],
  [0x26f5, 0x26f5],
  [0x26fa, 0x26fa],
  [0x26fd, 0x26fd],
  [0x2705, 0x2705],
  [0x270a, 0x270b],
  [0x2728, 0x2728],
  [0x274c, 0x274c],
  [0x274e, 0x274e],
  [0x2753, 0x2755],
  [0x2757, 0x2757],
  [0x2795, 0x2797],
  [0x27b0, 0x27b0],
  [0x27bf, 0x27bf],
  [0x2b1b, 0x2b1c],
  [0x2b50, 0x2b50],
  [0x2b55, 0x2b55],
  [0x2e80, 0x303e],
  [0x3041, 0x33ff],
  [0x3400, 0x4dbf],
  [0x4e00, 0x9fff],
  [0xa000, 0xa4cf],
  [0xa960, 0xa97f],
  [0xac00, 0xd7a3],
  [0xf900, 0xfaff],
  [0xfe10, 0xfe19],
  [0xfe30, 0xfe6f],
  [0xff00, 0xff60],
  [0xffe0, 0xffe6],
  [0x16fe0, 0x16fe4],
  [0x17000, 0x18cff],
  [0x1b000, 0x1b2ff],
  [0x1f004, 0x1f004],
  [0x1f0cf, 0x1f0cf],
  [0x1f18e, 0x1f18e],
  [0x1f191, 0x1f19a],
  [0x1f200, 0x1f251],
  [0x1f300, 0x1f320],
  [0x1f32d, 0x1f335],
  [0x1f337, 0x1f37c],
  [0x1f37e, 0x1f393],
  [0x1f3a0, 0x1f3ca],
  [0x1f3cf, 0x1f3d3],
  [0x1f3e0, 0x1f3f0],
  [0x1f3f4, 0x1f3f4],
  [0x1f3f8, 0x1f43e],
  [0x1f440, 0x1f440],
  [0x1f442, 0x1f4fc],
  [0x1f4ff, 0x1f53d],
  [0x1f54b, 0x1f54e],
  [0x1f550, 0x1f567],
  [0x1f57a, 0x1f57a],
  [0x1f595, 0x1f596],
  [0x1f5a4, 0x1f5a4],
  [0x1f5fb, 0x1f64f],
  [0x1f680, 0x1f6c5],
  [0x1f6cc, 0x1f6cc],
  [0x1f6d0, 0x1f6d2],
  [0x1f6d5, 0x1f6d7],
  [0x1f6dc, 0x1f6df],
  [0x1f6eb, 0x1f6ec],
  [0x1f6f4, 0x1f6fc],
  [0x1f7e0, 0x1f7eb],
  [0x1f7f0, 0x1f7f0],
  [0x1f90c, 0x1f93a],
  [0x1f93c, 0x1f945],
  [0x1f947, 0x1f9ff],
  [0x1fa70, 0x1faff],
  [0x20000, 0x2fffd],
  [0x30000, 0x3fffd],
];

const ZERO_WIDTH = /^[\p{Mn}\p{Me}\p{Cf}\u200b\u1160-\u11ff]$/u;

/** Columns one code point takes (0, 1 or 2); control characters count 0 (they are never shown). */
export function charWidth(codePoint: number): number {
  if (codePoint < 0x20 || (codePoint >= 0x7f && codePoint < 0xa0)) return 0;
  if (codePoint < 0x300) return 1;
  if (ZERO_WIDTH.test(String.fromCodePoint(codePoint))) return 0;
  let low = 0;
  let high = WIDE.length - 1;
  while (low <= high) {
    const mid = (low + high) >> 1;
    const [start, end] = WIDE[mid]!;
    if (codePoint < start) high = mid - 1;
    else if (codePoint > end) low = mid + 1;
    else return 2;
  }
  return 1;
}

/** Columns `text` takes on one line. */
export function textWidth(text: string): number {
  let width = 0;
  for (const char of text) width += charWidth(char.codePointAt(0)!);
  return width;
}

/**
 * `text` cut to at most `columns` columns, ending in `…` when it was cut (a wide character that
 * would straddle the edge is dropped whole).
 */
export function fitWidth(text: string, columns: number): string {
  if (textWidth(text) <= columns) return text;
  if (columns <= 0) return "";
  let width = 0;
  let out = "";
  for (const char of text) {
    const w = charWidth(char.codePointAt(0)!);
    if (width + w > columns - 1) break;
    out += char;
    width += w;
  }
  return out + "…";
}

/**
 * `text` with every line that is wider than `columns` broken at spaces, each continuation indented
 * as its line began; a word too wide for a line (a fingerprint) is broken after a colon, or else
 * at the edge. For messages printed straight to a terminal, so that no word is split by the
 * terminal's own wrapping. Narrow terminals (under 20 columns) get the text as it is.
 */
export function wrapWords(text: string, columns: number): string {
  if (columns < 20) return text;
  return text.split("\n").map((line) => wrapLine(line, columns)).join("\n");
}

function wrapLine(line: string, columns: number): string {
  if (textWidth(line) <= columns) return line;
  const indent = /^ */.exec(line)![0];
  const lines: string[] = [];
  let current = "";
  for (const word of line.slice(indent.length).split(" ")) {
    const next = current === "" ? word : `${current} ${word}`;
    if (textWidth(indent + next) <= columns) {
      current = next;
      continue;
    }
    if (current !== "") lines.push(indent + current);
    current = word;
    // A word wider than a line on its own.
    while (textWidth(indent + current) > columns) {
      const cut = breakAt(current, columns - indent.length);
      lines.push(indent + current.slice(0, cut));
      current = current.slice(cut);
    }
  }
  if (current !== "") lines.push(indent + current);
  return lines.join("\n");
}

/** Where to break a word too wide for `columns`: after its last colon that fits, or at the edge. */
function breakAt(word: string, columns: number): number {
  let width = 0;
  let index = 0;
  let afterColon = 0;
  for (const char of word) {
    const w = charWidth(char.codePointAt(0)!);
    if (width + w > columns) break;
    width += w;
    index += char.length;
    if (char === ":") afterColon = index;
  }
  return Math.max(afterColon || index, 1);
}
