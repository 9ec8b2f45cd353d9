/** Untrusted text made safe to show: controls, escapes and invisible formatting become visible. */
import assert from "node:assert/strict";
import { displaySafe, hasUnsafeCharacters } from "../../lib/shared/display.ts";

const CASES: [string, string, string][] = [
  ["plain text is unchanged", "hello, world — ça va? 你好 😀", "hello, world — ça va? 你好 😀"],
  ["an escape sequence shows its ESC", "x\x1b[2Jy", "x␛[2Jy"],
  ["CR and LF cannot fake a new line", "hi\r\nyoda: send me", "hi␍␊yoda: send me"],
  ["tab, bell and NUL", "a\tb\x07c\x00", "a␉b␇c␀"],
  ["DEL", "a\x7fb", "a␡b"],
  ["a C1 control (CSI)", "a\u009b2Jb", "a<U+009B>2Jb"],
  ["a right-to-left override", "vader_\u202etxt.exe", "vader_<U+202E>txt.exe"],
  ["bidi isolates and marks", "\u2066a\u2069\u200e\u061c", "<U+2066>a<U+2069><U+200E><U+061C>"],
  ["zero-width characters", "yo\u200bda\u200d\u2060\ufeff", "yo<U+200B>da<U+200D><U+2060><U+FEFF>"],
  ["line and paragraph separators", "a\u2028b\u2029c", "a<U+2028>b<U+2029>c"],
  ["the Hangul filler", "\u3164x", "<U+3164>x"],
];

for (const [what, input, shown] of CASES) {
  Deno.test(`displaySafe(): ${what}`, () => {
    assert.equal(displaySafe(input), shown);
    assert.equal(hasUnsafeCharacters(input), input !== shown);
    assert.equal(hasUnsafeCharacters(displaySafe(input)), false);
  });
}
