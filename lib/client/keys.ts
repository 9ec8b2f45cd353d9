/**
 * Bytes from a terminal in raw mode, turned into key presses: printable text (typed or pasted),
 * Enter, editing and movement keys, control keys, and bracketed pastes. Only this module reads
 * terminal input bytes; escape sequences it does not know are swallowed whole, never inserted.
 */

/** A key that is not text, by the name of the key (or chord) pressed. */
export type KeyName =
  | "enter"
  | "backspace"
  | "delete"
  | "tab"
  | "up"
  | "down"
  | "left"
  | "right"
  | "home"
  | "end"
  | "word-left"
  | "word-right"
  | "alt-backspace"
  | "alt-d"
  | "ctrl-a"
  | "ctrl-b"
  | "ctrl-c"
  | "ctrl-d"
  | "ctrl-e"
  | "ctrl-f"
  | "ctrl-k"
  | "ctrl-l"
  | "ctrl-n"
  | "ctrl-p"
  | "ctrl-u"
  | "ctrl-w"
  | "ctrl-y"
  | "ctrl-z"
  | "escape";

/** One key press: text to insert (typed or pasted), or a named key. */
export type Key =
  | { name: "text"; text: string }
  | { name: "paste"; text: string }
  | { name: KeyName };

/** Control bytes (C0 and DEL) and the keys they are. */
const CONTROL_KEYS: Partial<Record<string, KeyName>> = {
  "\x01": "ctrl-a",
  "\x02": "ctrl-b",
  "\x03": "ctrl-c",
  "\x04": "ctrl-d",
  "\x05": "ctrl-e",
  "\x06": "ctrl-f",
  "\x08": "backspace",
  "\t": "tab",
  "\n": "enter",
  "\r": "enter",
  "\x0b": "ctrl-k",
  "\x0c": "ctrl-l",
  "\x0e": "ctrl-n",
  "\x10": "ctrl-p",
  "\x15": "ctrl-u",
  "\x17": "ctrl-w",
  "\x19": "ctrl-y",
  "\x1a": "ctrl-z",
  "\x7f": "backspace",
};

/** Final bytes of CSI and SS3 sequences without a number: arrows, Home, End. */
const FINAL_KEYS: Partial<Record<string, KeyName>> = {
  A: "up",
  B: "down",
  C: "right",
  D: "left",
  H: "home",
  F: "end",
};

/** `CSI n ~` sequences by their number. */
const TILDE_KEYS: Partial<Record<string, KeyName>> = {
  "1": "home",
  "3": "delete",
  "4": "end",
  "7": "home",
  "8": "end",
};

/** ESC followed by one character (Alt+key, as most terminals send it). */
const ALT_KEYS: Partial<Record<string, KeyName>> = {
  b: "word-left",
  f: "word-right",
  d: "alt-d",
  "\x7f": "alt-backspace",
  "\x08": "alt-backspace",
};

const ESC = "\x1b";
const PASTE_START = "\x1b[200~";
const PASTE_END = "\x1b[201~";
/** An unfinished escape sequence longer than this is garbage: it is dropped. */
const MAX_SEQUENCE = 64;

// deno-lint-ignore no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;
const PASTE_BREAKS = /\r\n|[\r\n\t]/g;
// deno-lint-ignore no-control-regex
const PASTE_CONTROLS = /[\u0000-\u001f\u007f]/g;

type Scan = { key?: Key; length: number } | "incomplete";

/**
 * Turns the bytes a raw-mode terminal sends into keys. Feed it chunks as they arrive; a UTF-8
 * character or escape sequence split across chunks is completed by the next chunk.
 */
export class KeyParser {
  readonly #decoder = new TextDecoder();
  #pending = "";
  /** Text of a bracketed paste not yet ended. */
  #paste: string | undefined;
  /** Whether the last chunk ended with CR, so an LF starting the next one is the same Enter. */
  #afterCr = false;

  /** The keys in `bytes`, in order. */
  feed(bytes: Uint8Array): Key[] {
    const input = this.#pending + this.#decoder.decode(bytes, { stream: true });
    this.#pending = "";
    const keys: Key[] = [];
    let text = "";
    const flushText = () => {
      if (text) keys.push({ name: "text", text });
      text = "";
    };
    let i = 0;
    if (this.#afterCr && input.startsWith("\n")) i = 1;
    this.#afterCr = false;
    while (i < input.length) {
      if (this.#paste !== undefined) {
        const end = input.indexOf(PASTE_END, i);
        if (end < 0) {
          // Keep a possible start of the end marker for the next chunk.
          const keep = partialSuffix(input.slice(i), PASTE_END);
          this.#paste += input.slice(i, input.length - keep);
          this.#pending = input.slice(input.length - keep);
          break;
        }
        keys.push({ name: "paste", text: cleanPaste(this.#paste + input.slice(i, end)) });
        this.#paste = undefined;
        i = end + PASTE_END.length;
        continue;
      }
      const char = input[i]!;
      if (char === ESC) {
        const scan = scanEscape(input, i, input.length === 1);
        if (scan === "incomplete") {
          flushText();
          const rest = input.slice(i);
          // A lone ESC at the end of a chunk is kept for a sequence the next chunk completes.
          if (rest.length <= MAX_SEQUENCE) this.#pending = rest;
          break;
        }
        flushText();
        if (input.startsWith(PASTE_START, i)) {
          this.#paste = "";
        } else if (scan.key) {
          keys.push(scan.key);
        }
        i += scan.length;
        continue;
      }
      if (CONTROL.test(char)) {
        flushText();
        const name = CONTROL_KEYS[char];
        if (name) keys.push({ name });
        i++;
        if (char === "\r") {
          if (input[i] === "\n") i++;
          else if (i === input.length) this.#afterCr = true;
        }
        continue;
      }
      text += char;
      i++;
    }
    flushText();
    return keys;
  }
}

/** Reads the escape sequence at `input[at]` (an ESC). */
function scanEscape(input: string, at: number, alone: boolean): Scan {
  const next = input[at + 1];
  if (next === undefined) return alone ? { key: { name: "escape" }, length: 1 } : "incomplete";
  if (next === "[") return scanCsi(input, at);
  if (next === "O") {
    const final = input[at + 2];
    if (final === undefined) return "incomplete";
    const name = FINAL_KEYS[final];
    return { ...(name ? { key: { name } } : {}), length: 3 };
  }
  if (next === ESC) return { key: { name: "escape" }, length: 1 };
  const name = ALT_KEYS[next];
  return { ...(name ? { key: { name } } : {}), length: 2 };
}

/** CSI: ESC [ parameters (0x30–0x3F) intermediates (0x20–0x2F) final (0x40–0x7E). */
function scanCsi(input: string, at: number): Scan {
  let i = at + 2;
  let params = "";
  while (i < input.length && input.charCodeAt(i) >= 0x30 && input.charCodeAt(i) <= 0x3f) {
    params += input[i];
    i++;
  }
  while (i < input.length && input.charCodeAt(i) >= 0x20 && input.charCodeAt(i) <= 0x2f) i++;
  if (i >= input.length) return "incomplete";
  const code = input.charCodeAt(i);
  const length = i + 1 - at;
  if (code < 0x40 || code > 0x7e) return { length: length - 1 }; // broken: drop what came so far
  const final = input[i]!;
  const [first = "", modifier = ""] = params.split(";");
  if (final === "~") {
    if (first === "200") return { length }; // paste start, handled by the caller
    const name = TILDE_KEYS[first];
    return { ...(name ? { key: { name } } : {}), length };
  }
  const name = FINAL_KEYS[final];
  if (!name) return { length };
  // Ctrl (5) or Alt (3) with ←/→ moves by word, as in most shells.
  const chord = modifier === "5" || modifier === "3" || first === "5";
  if (chord && name === "left") return { key: { name: "word-left" }, length };
  if (chord && name === "right") return { key: { name: "word-right" }, length };
  return { key: { name }, length };
}

/** How many characters at the end of `text` could be the start of `marker`. */
function partialSuffix(text: string, marker: string): number {
  for (let n = Math.min(text.length, marker.length - 1); n > 0; n--) {
    if (marker.startsWith(text.slice(text.length - n))) return n;
  }
  return 0;
}

/** Pasted text goes into the one line being edited: breaks and tabs become spaces. */
function cleanPaste(text: string): string {
  return text.replace(PASTE_BREAKS, " ").replace(PASTE_CONTROLS, "");
}
