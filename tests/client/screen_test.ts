/**
 * The renderer as pure functions: how the input area wraps, where the cursor goes, and the exact
 * bytes that erase the live area (before and after a resize). What a person sees is tested in
 * tty_terminal_test.ts against a real terminal emulator.
 */
import assert from "node:assert/strict";
import { layoutInput, type LiveArea, Screen } from "../../lib/client/screen.ts";
import { textWidth } from "../../lib/client/text_width.ts";

function area(text: string, cursor = text.length, more: Partial<LiveArea> = {}): LiveArea {
  return { status: [], prompt: "> ", text, cursor, showCursor: true, ...more };
}

Deno.test("layoutInput() wraps prompt and text at the width, cursor after the last character", () => {
  assert.deepEqual(layoutInput(area("abcdefghijkl"), 10), {
    rows: ["> abcdefgh", "ijkl"],
    cursorRow: 1,
    cursorColumn: 4,
  });
});

Deno.test("layoutInput() starts a new row for the cursor after a full row", () => {
  assert.deepEqual(layoutInput(area("abcdefgh"), 10), {
    rows: ["> abcdefgh", ""],
    cursorRow: 1,
    cursorColumn: 0,
  });
});

Deno.test("layoutInput() puts the cursor on the character it is before", () => {
  assert.deepEqual(layoutInput(area("abcdefghijkl", 3), 10), {
    rows: ["> abcdefgh", "ijkl"],
    cursorRow: 0,
    cursorColumn: 5,
  });
  assert.deepEqual(layoutInput(area("abcdefghijkl", 8), 10).cursorRow, 1);
});

Deno.test("layoutInput() never splits a wide character across the edge", () => {
  const laid = layoutInput(area("你好世界再见"), 9);
  assert.deepEqual(laid.rows, ["> 你好世", "界再见"]);
  for (const row of laid.rows) assert.ok(textWidth(row) <= 9);
  assert.deepEqual([laid.cursorRow, laid.cursorColumn], [1, 6]);
  // An emoji that would straddle the edge moves to the next row, and the cursor with it.
  assert.deepEqual(layoutInput(area("abcdef😀x", 8), 9), {
    rows: ["> abcdef", "😀x"],
    cursorRow: 1,
    cursorColumn: 2,
  });
});

Deno.test("layoutInput() shows control and bidi characters in the input in a visible form", () => {
  assert.deepEqual(layoutInput(area("a\x1b[2Jb\u202e"), 40).rows, ["> a␛[2Jb<U+202E>"]);
  // The cursor after "a" and ESC (2 characters) is after "> a␛" (4 columns).
  assert.equal(layoutInput(area("a\x1b[2Jb\u202e", 2), 40).cursorColumn, 4);
});

Deno.test("layoutInput() shows only the prompt for a secret, the cursor after it", () => {
  assert.deepEqual(layoutInput(area("hunter2", 7, { prompt: "Password: ", secret: true }), 40), {
    rows: ["Password: "],
    cursorRow: 0,
    cursorColumn: 10,
  });
});

Deno.test("Screen.draw() prints lines, then status and input rows, parking the cursor at column 0", () => {
  const screen = new Screen({ columns: 10, rows: 24 });
  const out = screen.draw(area("abcdefghijkl", 12, { status: ["a status line too long"] }), [
    "line one",
  ]);
  assert.equal(
    out,
    "\x1b[?25l" + "line one\r\n" + "a status …\r\n> abcdefgh\r\nijkl\x1b[7m \x1b[27m\r",
  );
  assert.equal(screen.liveRows, 3);
});

Deno.test("Screen erases exactly the rows it drew, from the last row up", () => {
  const screen = new Screen({ columns: 10, rows: 24 });
  screen.draw(area("abcdefghijkl", 12, { status: ["s"] }));
  assert.equal(screen.erase(), "\r\x1b[2A\x1b[J");
  assert.equal(screen.erase(), "", "nothing is left to erase");
  screen.draw(area(""));
  assert.equal(screen.erase(), "\r\x1b[J");
});

Deno.test("Screen.resize() counts the rows above the cursor that a narrower terminal rewraps", () => {
  const screen = new Screen({ columns: 20, rows: 24 });
  screen.draw(area("x".repeat(36), 36, { status: ["s".repeat(20)] }));
  // status (20), input "> " + 18 x's, then 18 x's and the cursor cell.
  assert.equal(screen.liveRows, 3);
  screen.resize({ columns: 8, rows: 24 });
  // The two rows above the last become 3 rows each; the cursor stays at the start of the last.
  assert.equal(screen.liveRows, 7);
  assert.equal(screen.erase(), "\r\x1b[6A\x1b[J");
});

Deno.test("Screen.resize() to a wider terminal keeps the rows (they end in hard breaks)", () => {
  const screen = new Screen({ columns: 10, rows: 24 });
  screen.draw(area("abcdefghijkl", 12, { status: ["s"] }));
  screen.resize({ columns: 80, rows: 24 });
  assert.equal(screen.erase(), "\r\x1b[2A\x1b[J");
});

Deno.test("Screen keeps the live area within half the screen, showing the cursor's rows", () => {
  const screen = new Screen({ columns: 10, rows: 8 });
  const text = "0123456789".repeat(8);
  const out = screen.draw(area(text, 5, { status: ["one", "two"] }));
  assert.equal(screen.liveRows, 4);
  assert.ok(out.includes("> 0123"), "the cursor's row is shown");
  assert.ok(!out.includes("one"), "status lines give way to input rows");
  screen.draw(area("short", 5, { status: ["one", "two"] }));
  assert.equal(screen.liveRows, 3);
});

Deno.test("Screen.draw() makes status lines safe and never wider than the terminal", () => {
  const screen = new Screen({ columns: 12, rows: 24 });
  const out = screen.draw(area("", 0, { status: ["evil\x1b[2J\r\nname 你好你好"] }));
  assert.ok(out.includes("evil␛[2J␍␊n…\r\n"), JSON.stringify(out));
  assert.ok(!out.includes("\x1b[2J"));
});
