/**
 * Making untrusted text safe to show: text from the network or from files may carry control
 * characters, terminal escape sequences, or invisible formatting (bidi overrides, zero-width
 * characters) that would let someone rewrite another user's screen or disguise a name. Every
 * place that shows such text passes it through `displaySafe`.
 */

// C0 and C1 controls, DEL, line/paragraph separators, bidi controls, zero-width and other
// invisible format characters, and the BOM.
const UNSAFE =
  // deno-lint-ignore no-control-regex
  /[\u0000-\u001f\u007f-\u009f\u061c\u115f\u1160\u17b4\u17b5\u180e\u200b-\u200f\u202a-\u202e\u2028\u2029\u2060-\u206f\u3164\ufeff\uffa0\ufff9-\ufffb]/u;
const UNSAFE_ALL = new RegExp(UNSAFE.source, "gu");

/** Control pictures for C0 controls (U+2400 + code), so `ESC` shows as `␛`. */
function visible(char: string): string {
  const code = char.codePointAt(0)!;
  if (code < 0x20) return String.fromCodePoint(0x2400 + code);
  if (code === 0x7f) return "\u2421";
  return `<U+${code.toString(16).toUpperCase().padStart(4, "0")}>`;
}

/**
 * Replaces every control, escape and invisible formatting character with a visible form: C0
 * controls by their control pictures (`␛`, `␍`, `␊`), DEL by `␡`, the others by `<U+XXXX>`.
 * Text without such characters is returned unchanged.
 */
export function displaySafe(text: string): string {
  return UNSAFE.test(text) ? text.replace(UNSAFE_ALL, visible) : text;
}

/** Whether `text` holds a character that `displaySafe` would replace. */
export function hasUnsafeCharacters(text: string): boolean {
  return UNSAFE.test(text);
}
