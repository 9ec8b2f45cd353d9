/** Terminal columns of text: wide characters, emoji, combining marks, fitting with `…`, wrapping. */
import assert from "node:assert/strict";
import { charWidth, fitWidth, textWidth, wrapWords } from "../../lib/client/text_width.ts";

Deno.test("textWidth() counts ASCII and Latin one column each", () => {
  assert.equal(textWidth("hello, ça va"), 12);
});

Deno.test("textWidth() counts CJK, fullwidth and emoji two columns each", () => {
  assert.equal(textWidth("你好"), 4);
  assert.equal(textWidth("ＡＢ"), 4);
  assert.equal(textWidth("😀🚀"), 4);
  assert.equal(textWidth("한국어"), 6);
});

Deno.test("textWidth() counts combining marks and zero-width characters as nothing", () => {
  assert.equal(textWidth("e\u0301"), 1);
  assert.equal(textWidth("a\u200bb"), 2);
  assert.equal(charWidth(0x1b), 0);
});

Deno.test("fitWidth() leaves text that fits, and cuts the rest with an ellipsis", () => {
  assert.equal(fitWidth("short", 10), "short");
  assert.equal(fitWidth("exactly10!", 10), "exactly10!");
  assert.equal(fitWidth("a longer line", 8), "a longe…");
  assert.equal(textWidth(fitWidth("a longer line", 8)), 8);
});

Deno.test("fitWidth() never splits a wide character across the edge", () => {
  assert.equal(fitWidth("你好世界", 6), "你好…");
  assert.equal(fitWidth("你好世界", 5), "你好…");
  assert.equal(textWidth(fitWidth("你好世界", 4)), 3);
  assert.equal(fitWidth("abc", 0), "");
});

Deno.test("wrapWords() breaks long lines between words, keeping each line's indentation", () => {
  const text = "First connection to 127.0.0.1:443: its TLS certificate is not signed by an " +
    "authority this client trusts.\n  short\n  an indented line that is too long for the width";
  assert.equal(
    wrapWords(text, 40),
    [
      "First connection to 127.0.0.1:443: its",
      "TLS certificate is not signed by an",
      "authority this client trusts.",
      "  short",
      "  an indented line that is too long for",
      "  the width",
    ].join("\n"),
  );
  for (const line of wrapWords(text, 40).split("\n")) assert.ok(textWidth(line) <= 40, line);
});

Deno.test("wrapWords() breaks a word wider than the line after a colon, else at the edge", () => {
  const fingerprint = "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89";
  assert.equal(
    wrapWords(`  SHA-256 fingerprint: ${fingerprint}`, 24),
    ["  SHA-256 fingerprint:", "  AB:CD:EF:01:23:45:67:", "  89:AB:CD:EF:01:23:45:", "  67:89"]
      .join("\n"),
  );
  assert.equal(
    wrapWords("x".repeat(45), 20),
    ["x".repeat(20), "x".repeat(20), "x".repeat(5)].join("\n"),
  );
  // Wide characters count double; short lines and narrow terminals are left alone.
  assert.equal(wrapWords("日本語 日本語 日本語", 20), "日本語 日本語 日本語");
  assert.equal(wrapWords("日本語日本語 日本語日本語", 20), "日本語日本語\n日本語日本語");
  assert.equal(wrapWords("a b c d e f g h i j k l m n o p", 10), "a b c d e f g h i j k l m n o p");
});
