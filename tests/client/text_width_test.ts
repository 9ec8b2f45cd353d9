/** Terminal columns of text: wide characters, emoji, combining marks, and fitting with `…`. */
import assert from "node:assert/strict";
import { charWidth, fitWidth, textWidth } from "../../lib/client/text_width.ts";

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
