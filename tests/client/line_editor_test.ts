/** The line being typed: editing, movement by character and word, history, kill/yank, Tab. */
import assert from "node:assert/strict";
import type { Key, KeyName } from "../../lib/client/keys.ts";
import { commonPrefix, LineEditor } from "../../lib/client/line_editor.ts";

function press(editor: LineEditor, ...keys: Array<KeyName | { text: string }>): void {
  for (const key of keys) {
    const k: Key = typeof key === "string" ? { name: key } : { name: "text", text: key.text };
    editor.apply(k);
  }
}

/** The line with `|` at the cursor. */
function shown(editor: LineEditor): string {
  return editor.text.slice(0, editor.cursor) + "|" + editor.text.slice(editor.cursor);
}

Deno.test("LineEditor inserts at the cursor and moves with arrows, Home and End", () => {
  const editor = new LineEditor();
  press(editor, { text: "helo" }, "left", { text: "l" });
  assert.equal(shown(editor), "hell|o");
  press(editor, "home", { text: ">" }, "end", { text: "!" });
  assert.equal(shown(editor), ">hello!|");
  press(editor, "ctrl-a", "ctrl-f", "ctrl-f");
  assert.equal(shown(editor), ">h|ello!");
  press(editor, "ctrl-e", "ctrl-b");
  assert.equal(shown(editor), ">hello|!");
});

Deno.test("LineEditor deletes back and forward by whole characters (emoji, combining marks)", () => {
  const editor = new LineEditor();
  press(editor, { text: "a😀e\u0301你" });
  press(editor, "backspace");
  assert.equal(shown(editor), "a😀e\u0301|");
  press(editor, "backspace");
  assert.equal(shown(editor), "a😀|");
  press(editor, "left");
  assert.equal(shown(editor), "a|😀");
  press(editor, "delete");
  assert.equal(shown(editor), "a|");
  press(editor, "delete", "home", "backspace");
  assert.equal(shown(editor), "|a");
});

Deno.test("LineEditor moves and deletes by word", () => {
  const editor = new LineEditor();
  press(editor, { text: "message vader hello there" });
  press(editor, "word-left");
  assert.equal(shown(editor), "message vader hello |there");
  press(editor, "word-left", "word-left");
  assert.equal(shown(editor), "message |vader hello there");
  press(editor, "word-right");
  assert.equal(shown(editor), "message vader| hello there");
  press(editor, "alt-d");
  assert.equal(shown(editor), "message vader| there");
  press(editor, "alt-backspace");
  assert.equal(shown(editor), "message | there");
});

Deno.test("LineEditor kills with Ctrl+K, Ctrl+U and Ctrl+W and yanks with Ctrl+Y", () => {
  const editor = new LineEditor();
  press(editor, { text: "UPD hans my/file.txt" }, "ctrl-w");
  assert.equal(shown(editor), "UPD hans |");
  press(editor, "ctrl-y");
  assert.equal(shown(editor), "UPD hans my/file.txt|");
  press(editor, "home", "word-right", "ctrl-k");
  assert.equal(shown(editor), "UPD|");
  assert.equal(editor.killed, " hans my/file.txt");
  press(editor, "ctrl-u");
  assert.equal(shown(editor), "|");
  assert.equal(editor.killed, "UPD");
  press(editor, "ctrl-y", "ctrl-y");
  assert.equal(shown(editor), "UPDUPD|");
});

Deno.test("LineEditor history: ↑/↓ browse, keep the draft, skip blanks and repeats", () => {
  const editor = new LineEditor();
  for (const line of ["one", "two", "two", "   ", "three"]) editor.remember(line);
  assert.deepEqual(editor.history, ["one", "two", "three"]);
  press(editor, { text: "draft" }, "up");
  assert.equal(shown(editor), "three|");
  press(editor, "up", "up", "up");
  assert.equal(shown(editor), "one|");
  press(editor, "down", "ctrl-n");
  assert.equal(shown(editor), "three|");
  press(editor, "down");
  assert.equal(shown(editor), "draft|");
  press(editor, "down");
  assert.equal(shown(editor), "draft|");
  press(editor, "ctrl-p");
  assert.equal(shown(editor), "three|");
});

Deno.test("LineEditor history keeps the most recent lines up to its size", () => {
  const editor = new LineEditor({ historySize: 3 });
  for (let i = 1; i <= 5; i++) editor.remember(`line ${i}`);
  assert.deepEqual(editor.history, ["line 3", "line 4", "line 5"]);
});

Deno.test("LineEditor.take() returns the line and starts an empty one", () => {
  const editor = new LineEditor();
  editor.remember("old");
  press(editor, { text: "new" }, "up");
  assert.equal(editor.take(), "old");
  assert.equal(shown(editor), "|");
  press(editor, "up");
  assert.equal(shown(editor), "old|");
});

Deno.test("LineEditor.complete() replaces the word with the one candidate and a space", () => {
  const editor = new LineEditor();
  press(editor, { text: "message va" });
  assert.deepEqual(editor.complete({ from: 8, candidates: ["vader"] }, false), {
    done: "completed",
  });
  assert.equal(shown(editor), "message vader |");
});

Deno.test("LineEditor.complete() adds no space after a directory", () => {
  const editor = new LineEditor();
  press(editor, { text: "UPD hans do more" }, "word-left", "left");
  editor.complete({ from: 9, candidates: ["docs/"] }, false);
  assert.equal(shown(editor), "UPD hans docs/| more");
});

Deno.test("LineEditor.complete() extends to the common prefix, then lists on a second Tab", () => {
  const editor = new LineEditor();
  press(editor, { text: "whoe" });
  const completion = { from: 0, candidates: ["whoelse", "whoelsesince"] };
  assert.deepEqual(editor.complete(completion, false), { done: "completed" });
  assert.equal(shown(editor), "whoelse|");
  assert.deepEqual(editor.complete(completion, false), { done: "nothing" });
  assert.deepEqual(editor.complete(completion, true), {
    done: "list",
    candidates: ["whoelse", "whoelsesince"],
  });
  assert.equal(shown(editor), "whoelse|");
});

Deno.test("LineEditor.complete() with no candidate changes nothing", () => {
  const editor = new LineEditor();
  press(editor, { text: "xyz" });
  assert.deepEqual(editor.complete({ from: 0, candidates: [] }, true), { done: "nothing" });
  assert.equal(shown(editor), "xyz|");
});

Deno.test("commonPrefix() works on whole characters", () => {
  assert.equal(commonPrefix(["你好世界", "你好吗"]), "你好");
  assert.equal(commonPrefix(["😀a", "😁b"]), "");
  assert.equal(commonPrefix([]), "");
  assert.equal(commonPrefix(["same"]), "same");
});
