/** Raw terminal bytes → keys: text, control keys, escape sequences, pastes, split chunks. */
import assert from "node:assert/strict";
import { type Key, KeyParser } from "../../lib/client/keys.ts";

const encoder = new TextEncoder();

function keys(...chunks: Array<string | number[]>): Key[] {
  const parser = new KeyParser();
  return chunks.flatMap((chunk) =>
    parser.feed(typeof chunk === "string" ? encoder.encode(chunk) : new Uint8Array(chunk))
  );
}

Deno.test("KeyParser reads printable text, including CJK and emoji, as one text key", () => {
  assert.deepEqual(keys("hello 你好 😀"), [{ name: "text", text: "hello 你好 😀" }]);
});

Deno.test("KeyParser reads control keys by name", () => {
  const table: Array<[string, string]> = [
    ["\r", "enter"],
    ["\n", "enter"],
    ["\x7f", "backspace"],
    ["\x08", "backspace"],
    ["\t", "tab"],
    ["\x01", "ctrl-a"],
    ["\x02", "ctrl-b"],
    ["\x03", "ctrl-c"],
    ["\x04", "ctrl-d"],
    ["\x05", "ctrl-e"],
    ["\x06", "ctrl-f"],
    ["\x0b", "ctrl-k"],
    ["\x0c", "ctrl-l"],
    ["\x0e", "ctrl-n"],
    ["\x10", "ctrl-p"],
    ["\x15", "ctrl-u"],
    ["\x17", "ctrl-w"],
    ["\x19", "ctrl-y"],
    ["\x1a", "ctrl-z"],
  ];
  for (const [bytes, name] of table) assert.deepEqual(keys(bytes), [{ name }], name);
});

Deno.test("KeyParser reads arrows, Home, End and Delete in their CSI and SS3 forms", () => {
  const table: Array<[string, string]> = [
    ["\x1b[A", "up"],
    ["\x1b[B", "down"],
    ["\x1b[C", "right"],
    ["\x1b[D", "left"],
    ["\x1bOA", "up"],
    ["\x1bOD", "left"],
    ["\x1b[H", "home"],
    ["\x1b[F", "end"],
    ["\x1bOH", "home"],
    ["\x1bOF", "end"],
    ["\x1b[1~", "home"],
    ["\x1b[7~", "home"],
    ["\x1b[4~", "end"],
    ["\x1b[8~", "end"],
    ["\x1b[3~", "delete"],
    ["\x1b[1;5D", "word-left"],
    ["\x1b[1;5C", "word-right"],
    ["\x1b[1;3D", "word-left"],
    ["\x1bb", "word-left"],
    ["\x1bf", "word-right"],
    ["\x1bd", "alt-d"],
    ["\x1b\x7f", "alt-backspace"],
  ];
  for (const [bytes, name] of table) {
    assert.deepEqual(keys(bytes), [{ name }], JSON.stringify(bytes));
  }
});

Deno.test("KeyParser swallows escape sequences it does not know, never inserting them", () => {
  assert.deepEqual(keys("a\x1b[5~b\x1b[?1;2cc\x1b[15;5~d\x1bxe"), [
    { name: "text", text: "a" },
    { name: "text", text: "b" },
    { name: "text", text: "c" },
    { name: "text", text: "d" },
    { name: "text", text: "e" },
  ]);
  assert.deepEqual(keys("\x00\x1c\x1d"), []);
});

Deno.test("KeyParser keeps order between text and keys in one chunk", () => {
  assert.deepEqual(keys("ab\x1b[Dc\r"), [
    { name: "text", text: "ab" },
    { name: "left" },
    { name: "text", text: "c" },
    { name: "enter" },
  ]);
});

Deno.test("KeyParser reads CR LF as one Enter, also across chunks, and LF LF as two", () => {
  assert.deepEqual(keys("a\r\nb"), [
    { name: "text", text: "a" },
    { name: "enter" },
    { name: "text", text: "b" },
  ]);
  assert.deepEqual(keys("a\r", "\nb"), [
    { name: "text", text: "a" },
    { name: "enter" },
    { name: "text", text: "b" },
  ]);
  assert.deepEqual(keys("\n\n"), [{ name: "enter" }, { name: "enter" }]);
});

Deno.test("KeyParser completes a UTF-8 character split across chunks", () => {
  const bytes = [...encoder.encode("你😀")];
  assert.deepEqual(keys(bytes.slice(0, 2), bytes.slice(2, 5), bytes.slice(5)), [
    { name: "text", text: "你" },
    { name: "text", text: "😀" },
  ]);
});

Deno.test("KeyParser completes an escape sequence split across chunks", () => {
  assert.deepEqual(keys("x\x1b", "[", "D"), [{ name: "text", text: "x" }, { name: "left" }]);
  assert.deepEqual(keys("\x1b[1;", "5C"), [{ name: "word-right" }]);
});

Deno.test("KeyParser reads a lone ESC chunk as the Escape key", () => {
  assert.deepEqual(keys("\x1b"), [{ name: "escape" }]);
});

Deno.test("KeyParser reads a bracketed paste as one paste key with breaks made spaces", () => {
  assert.deepEqual(keys("\x1b[200~line one\r\nline\ttwo\x1b[201~!"), [
    { name: "paste", text: "line one line two" },
    { name: "text", text: "!" },
  ]);
  // Escape sequences inside a paste are text being pasted, not keys; their controls go.
  assert.deepEqual(keys("\x1b[200~a\x1b[2Jb\x03\x1b[201~"), [{ name: "paste", text: "a[2Jb" }]);
});

Deno.test("KeyParser reads a bracketed paste spread over chunks, end marker split too", () => {
  assert.deepEqual(keys("\x1b[200~first ", "second\x1b[20", "1~\r"), [
    { name: "paste", text: "first second" },
    { name: "enter" },
  ]);
});

Deno.test("KeyParser reads pasted lines without brackets as text and Enter keys", () => {
  assert.deepEqual(keys("MSG one\rMSG two\r"), [
    { name: "text", text: "MSG one" },
    { name: "enter" },
    { name: "text", text: "MSG two" },
    { name: "enter" },
  ]);
});
