/**
 * TtyTerminal as a person sees it: what it writes is fed to a real terminal emulator (xterm.js,
 * headless) at 40, 80 and 120 columns, and the tests read the screen and the scrollback. Every
 * printed line must be there exactly once and in order, and the line being typed intact,
 * whatever arrives, however it wraps, and after resizes.
 */
import assert from "node:assert/strict";
import { COMMAND_PROMPT } from "../../lib/shared/commands.ts";
import type { LineKind } from "../../lib/client/terminal.ts";
import { type TtyOptions, TtyTerminal } from "../../lib/client/tty_terminal.ts";
import { fitWidth, textWidth } from "../../lib/client/text_width.ts";
import { layoutInput } from "../../lib/client/screen.ts";
import { VirtualTerminal } from "../../testing/virtual_terminal.ts";

const NOW = () => new Date(2024, 0, 1, 14, 2);
const WIDTHS = [40, 80, 120];
const UP = "\x1b[A";
const LEFT = "\x1b[D";

/** How each kind of line starts on the screen (colour off). */
const LEADS: Record<LineKind, string> = {
  reply: "",
  error: "",
  own: "",
  message: "[14:02] » ",
  broadcast: "[14:02] * ",
  private: "[14:02] ⇄ ",
  presence: "[14:02] -!- ",
  notice: "[14:02] -!- ",
};
const KINDS = Object.keys(LEADS) as LineKind[];

interface Tty extends AsyncDisposable {
  vt: VirtualTerminal;
  terminal: TtyTerminal;
}

/** A TtyTerminal on a fresh emulator, colour off and the clock at 14:02 unless told. */
function tty(columns: number, rows = 24, options: TtyOptions = {}): Tty {
  const vt = new VirtualTerminal({ columns, rows });
  const terminal = new TtyTerminal(vt.device, { colour: false, now: NOW, ...options });
  return {
    vt,
    terminal,
    async [Symbol.asyncDispose]() {
      terminal.close();
      await vt[Symbol.asyncDispose]();
    },
  };
}

/** A line of `kind` printed, and how it shows. */
function event(terminal: TtyTerminal, kind: LineKind, text: string): string {
  terminal.print(text, kind);
  return LEADS[kind] + text;
}

/** Checks the input area: the last rows of `lines` are `text` after `> `, wrapped at `columns`. */
function assertInputArea(lines: string[], from: number, text: string, columns: number) {
  const rows = lines.slice(from);
  const expected = layoutInput({ status: [], prompt: "> ", text, cursor: text.length }, columns)
    .rows.map((row) => row.trimEnd());
  while (expected.at(-1) === "") expected.pop();
  assert.deepEqual(rows, expected, `input area:\n${rows.join("\n")}`);
  // Every character is there, in order (rows lose only the spaces at their ends).
  assert.equal(rows.join("").replaceAll(" ", ""), `> ${text}`.replaceAll(" ", ""));
  for (const row of rows) assert.ok(textWidth(row) <= columns, `row too wide: ${row}`);
}

/** Lines of mixed kinds and lengths, some wrapping at every width. */
function burst(terminal: TtyTerminal, count: number, start = 0): string[] {
  const shown: string[] = [];
  for (let i = start; i < start + count; i++) {
    const kind = KINDS[i % KINDS.length]!;
    shown.push(event(terminal, kind, `user${i}: event ${i} ${"abc ".repeat((i * 7) % 40)}end`));
  }
  return shown;
}

const LONG_LINE = "MSG " + "the quick brown fox jumps over the lazy dog ".repeat(4) + "and stops";

for (const columns of WIDTHS) {
  Deno.test(`TtyTerminal at ${columns} columns prints bursts above a wrapped half-typed line, each once`, async () => {
    await using t = tty(columns);
    const reading = t.terminal.readLine(COMMAND_PROMPT);
    await t.vt.type(LONG_LINE.slice(0, 90));
    const events = burst(t.terminal, 30);
    await t.vt.type(LONG_LINE.slice(90));
    events.push(...burst(t.terminal, 30, 30));
    const lines = await t.vt.lines();
    assert.deepEqual(lines.slice(0, 61), [COMMAND_PROMPT, ...events], await t.vt.picture());
    assertInputArea(lines, 61, LONG_LINE, columns);
    await t.vt.type("\r");
    assert.equal(await reading, LONG_LINE);
    assert.deepEqual(await t.vt.lines(), [COMMAND_PROMPT, ...events, "> " + LONG_LINE]);
  });

  Deno.test(`TtyTerminal at ${columns} columns keeps every line, status and input through resizes`, async () => {
    await using t = tty(columns);
    const reading = t.terminal.readLine(COMMAND_PROMPT);
    const events = burst(t.terminal, 20);
    const status = (width: number) => `[####------] 40% upload.bin → hans ${"=".repeat(width)}`;
    t.terminal.status("upload", status);
    await t.vt.type(LONG_LINE.slice(0, 70));
    await t.vt.resize(Math.floor(columns * 0.6), 24);
    events.push(...burst(t.terminal, 5, 20));
    await t.vt.type(LONG_LINE.slice(70, 120) + LEFT.repeat(30));
    await t.vt.resize(columns + 17, 24);
    events.push(...burst(t.terminal, 5, 25));
    await t.vt.type("\x1b[F" + LONG_LINE.slice(120));
    await t.vt.resize(columns, 30);
    events.push(...burst(t.terminal, 5, 30));
    const lines = await t.vt.lines();
    assert.deepEqual(lines.slice(0, 36), [COMMAND_PROMPT, ...events], await t.vt.picture());
    assert.equal(lines[36], fitWidth(status(columns), columns));
    assertInputArea(lines, 37, LONG_LINE, columns);
    t.terminal.status("upload", null);
    await t.vt.type("\r");
    assert.equal(await reading, LONG_LINE);
    assert.deepEqual(await t.vt.lines(), [COMMAND_PROMPT, ...events, "> " + LONG_LINE]);
  });
}

Deno.test("TtyTerminal shows the editing position where the cursor is, also after a resize", async () => {
  await using t = tty(40);
  t.terminal.readLine("Username: ");
  await t.vt.type("a".repeat(50) + LEFT.repeat(5));
  // "Username: " + 50 a's: 40 on the first row, 20 on the second; the cursor on the 16th.
  let screen = await t.vt.screen();
  assert.deepEqual(await t.vt.reversed(), [{ row: 1, column: 15 }], screen.join("\n"));
  await t.vt.resize(25, 24);
  screen = await t.vt.screen();
  // 60 columns of text on rows of 25: the cursor on the 56th cell, row 2, column 5.
  assert.deepEqual(await t.vt.reversed(), [{ row: 2, column: 5 }], screen.join("\n"));
  assert.equal(screen.slice(0, 3).join(""), "Username: " + "a".repeat(50));
});

Deno.test("TtyTerminal handles CJK and emoji in input and output, never splitting a wide character", async () => {
  await using t = tty(40);
  const reading = t.terminal.readLine(COMMAND_PROMPT);
  const typed = "message 韩梅梅 你好，李雷！今天我们一起去图书馆看书吧😀🚀 好不好？";
  await t.vt.type(typed);
  const events = [
    event(
      t.terminal,
      "message",
      "李雷: 你好，韩梅梅！😀 这是一条很长的消息，它会在终端里换行显示。",
    ),
    event(t.terminal, "broadcast", "hans: 🚀🚀🚀 launch"),
  ];
  const lines = await t.vt.lines();
  assert.deepEqual(lines.slice(0, 3), [COMMAND_PROMPT, ...events], await t.vt.picture());
  assertInputArea(lines, 3, typed, 40);
  await t.vt.type("\r");
  assert.equal(await reading, typed);
  assert.deepEqual(await t.vt.lines(), [COMMAND_PROMPT, ...events, "> " + typed]);
});

Deno.test("TtyTerminal status lines appear, update and go without leaving fragments", async () => {
  await using t = tty(40);
  t.terminal.readLine(COMMAND_PROMPT);
  await t.vt.type("MSG typing while files move");
  const bar = (name: string, percent: number) => (columns: number) =>
    `[${"#".repeat(percent / 5)}${"-".repeat(20 - percent / 5)}] ${percent}% ${name}`.padEnd(
      columns + 10,
      ".",
    );
  const events: string[] = [];
  for (let percent = 0; percent <= 100; percent += 5) {
    t.terminal.status("a", bar("first-file-with-a-long-name.bin", percent));
    if (percent === 25) t.terminal.status("b", bar("second.bin", percent));
    if (percent > 25 && percent < 75) t.terminal.status("b", bar("second.bin", percent * 0.8));
    if (percent === 75) t.terminal.status("b", null);
    if (percent % 20 === 0) events.push(event(t.terminal, "notice", `tick ${percent}`));
  }
  let lines = await t.vt.lines();
  assert.deepEqual(lines.slice(0, 7), [COMMAND_PROMPT, ...events], await t.vt.picture());
  assert.equal(lines.length, 9, await t.vt.picture());
  assert.equal(lines[7], "[####################] 100% first-file-…", "cut to the width");
  assert.equal(lines[8], "> MSG typing while files move");
  t.terminal.status("a", null);
  events.push(event(t.terminal, "notice", "first-file-with-a-long-name.bin has been uploaded"));
  lines = await t.vt.lines();
  assert.deepEqual(lines, [COMMAND_PROMPT, ...events, "> MSG typing while files move"]);
});

Deno.test("TtyTerminal asks a password inline without echoing it, and keeps it out of history", async () => {
  await using t = tty(80);
  const name = t.terminal.readLine("Username: ");
  await t.vt.type("yoda\r");
  assert.equal(await name, "yoda");
  const password = t.terminal.readSecret("Password: ");
  await t.vt.type("jedi-secret");
  assert.equal((await t.vt.screen()).filter((row) => row !== "").at(-1)?.trimEnd(), "Password:");
  await t.vt.type("\r");
  assert.equal(await password, "jedi-secret");
  assert.ok(!t.vt.output.includes("jedi"), "the password never reaches the terminal");
  t.terminal.print("Welcome to TOOM!");
  const next = t.terminal.readLine(COMMAND_PROMPT);
  await t.vt.type(UP);
  await t.vt.type(UP);
  assert.ok(!t.vt.output.includes("jedi"), "↑ does not bring the password back");
  await t.vt.type("\r");
  assert.equal(await next, "yoda");
  assert.deepEqual(await t.vt.lines(), [
    "Username: yoda",
    "Password:",
    "Welcome to TOOM!",
    COMMAND_PROMPT,
    "> yoda",
  ]);
});

Deno.test("TtyTerminal: Ctrl+C clears a typed line, and on an empty line ends input", async () => {
  await using t = tty(80);
  const reading = t.terminal.readLine(COMMAND_PROMPT);
  await t.vt.type("MSG half typed");
  await t.vt.type("\x03");
  assert.deepEqual(await t.vt.lines(), [COMMAND_PROMPT, ">"]);
  let settled = false;
  reading.then(() => settled = true);
  await Promise.resolve();
  assert.equal(settled, false, "a cleared line does not end the read");
  await t.vt.type("\x03");
  assert.equal(await reading, null);
});

Deno.test("TtyTerminal: Ctrl+D deletes under the cursor, and on an empty line ends input", async () => {
  await using t = tty(80);
  const first = t.terminal.readLine("Username: ");
  await t.vt.type("yodaa" + LEFT + "\x04\r");
  assert.equal(await first, "yoda");
  const second = t.terminal.readLine("Username: ");
  await t.vt.type("\x04");
  assert.equal(await second, null);
});

Deno.test("TtyTerminal recalls history with ↑ and ↓", async () => {
  await using t = tty(80);
  for (const line of ["MSG one", "MSG two"]) {
    const reading = t.terminal.readLine(COMMAND_PROMPT);
    await t.vt.type(line + "\r");
    assert.equal(await reading, line);
  }
  const reading = t.terminal.readLine(COMMAND_PROMPT);
  await t.vt.type("draft");
  await t.vt.type(UP + UP);
  assert.equal((await t.vt.lines()).at(-1), "> MSG one");
  await t.vt.type("\x1b[B\x1b[B");
  assert.equal((await t.vt.lines()).at(-1), "> draft");
  await t.vt.type(UP + "!\r");
  assert.equal(await reading, "MSG two!");
});

Deno.test("TtyTerminal returns lines typed while a command runs, in order, each echoed when read", async () => {
  await using t = tty(80);
  const first = t.terminal.readLine(COMMAND_PROMPT);
  await t.vt.type("MSG one\r");
  assert.equal(await first, "MSG one");
  // The command is running: nothing is reading. Two more lines are typed, and a half line.
  await t.vt.type("MSG two\rMSG three\rMSG fo");
  assert.equal((await t.vt.lines()).at(-1), "MSG fo", "text typed ahead is shown as typed");
  t.terminal.print("Message #1 posted.");
  assert.equal(await t.terminal.readLine(COMMAND_PROMPT), "MSG two");
  t.terminal.print("Message #2 posted.");
  assert.equal(await t.terminal.readLine(COMMAND_PROMPT), "MSG three");
  t.terminal.print("Message #3 posted.");
  const last = t.terminal.readLine(COMMAND_PROMPT);
  await t.vt.type("ur\r");
  assert.equal(await last, "MSG four");
  assert.deepEqual(await t.vt.lines(), [
    COMMAND_PROMPT,
    "> MSG one",
    "Message #1 posted.",
    COMMAND_PROMPT,
    "> MSG two",
    "Message #2 posted.",
    COMMAND_PROMPT,
    "> MSG three",
    "Message #3 posted.",
    COMMAND_PROMPT,
    "> MSG four",
  ]);
});

Deno.test("TtyTerminal prints the long command prompt once per result, dim, with a short input prompt", async () => {
  await using t = tty(80, 24, { colour: true });
  const first = t.terminal.readLine(COMMAND_PROMPT);
  await t.vt.type("\r");
  assert.equal(await first, "");
  const second = t.terminal.readLine(COMMAND_PROMPT);
  await t.vt.type("x");
  assert.deepEqual(await t.vt.lines(), [COMMAND_PROMPT, "> x"], "an empty line repeats nothing");
  assert.ok(t.vt.output.includes(`\x1b[2m${COMMAND_PROMPT}\x1b[0m`));
  await t.vt.type("\r");
  await second;
});

Deno.test("TtyTerminal marks, times and colours lines by kind; NO_COLOR keeps the marks", async () => {
  await using coloured = tty(80, 24, { colour: true });
  await using plain = tty(80, 24, { colour: false });
  for (const t of [coloured, plain]) {
    t.terminal.print("yoda: hi", "message");
    t.terminal.print("vader: all", "broadcast");
    t.terminal.print("hans(private): psst", "private");
    t.terminal.print("obiwan logged in", "presence");
    t.terminal.print("Received a.txt from hans", "notice");
    t.terminal.print("→ vader: hello", "own");
    t.terminal.print("Message #1 does not exist.", "error");
    t.terminal.print("Message #1 posted.", "reply");
    assert.deepEqual(await t.vt.lines(), [
      "[14:02] » yoda: hi",
      "[14:02] * vader: all",
      "[14:02] ⇄ hans(private): psst",
      "[14:02] -!- obiwan logged in",
      "[14:02] -!- Received a.txt from hans",
      "→ vader: hello",
      "Message #1 does not exist.",
      "Message #1 posted.",
    ]);
  }
  const out = coloured.vt.output;
  assert.ok(out.includes("\x1b[1;36m» yoda: hi\x1b[0m"), "direct: bold cyan");
  assert.ok(out.includes("\x1b[33m* vader: all\x1b[0m"), "broadcast: yellow");
  assert.ok(out.includes("\x1b[1;35m⇄ hans(private): psst\x1b[0m"), "private: bold magenta");
  assert.ok(out.includes("\x1b[2m→ vader: hello\x1b[0m"), "own: dim");
  assert.ok(out.includes("\x1b[31mMessage #1 does not exist.\x1b[0m"), "error: red");
  assert.ok(out.includes("\x1b[2m[14:02]\x1b[0m"), "time: dim");
  // Without colour, no SGR at all (nothing is being read, so not even the cursor cell).
  // deno-lint-ignore no-control-regex
  assert.deepEqual(plain.vt.output.match(/\x1b\[[0-9;]*m/g), null);
});

Deno.test("TtyTerminal rings the bell on direct and private messages only, unless turned off", async () => {
  await using t = tty(80);
  await using quiet = tty(80, 24, { bell: false });
  for (const kind of KINDS) t.terminal.print("x", kind);
  assert.equal(t.vt.output.split("\x07").length - 1, 2);
  for (const kind of KINDS) quiet.terminal.print("x", kind);
  assert.ok(!quiet.vt.output.includes("\x07"));
});

Deno.test("TtyTerminal shows hostile text visibly, without clearing the screen or moving the cursor", async () => {
  await using t = tty(80);
  t.terminal.readLine(COMMAND_PROMPT);
  await t.vt.type("MSG mine");
  const events = [
    event(t.terminal, "notice", "before"),
    event(
      t.terminal,
      "private",
      "vader(private): \x1b[2J\x1b[Hwiped?\r\nyoda: send me your password",
    ),
    event(t.terminal, "notice", "Received vader_\u202etxt.exe from vader"),
    event(t.terminal, "message", "\x1b]0;title\x07\x1b[31mred\x1b[1A\x1b[Kup\bback"),
    event(t.terminal, "notice", "after"),
  ];
  assert.deepEqual(await t.vt.lines(), [
    COMMAND_PROMPT,
    "[14:02] -!- before",
    "[14:02] ⇄ vader(private): ␛[2J␛[Hwiped?␍␊yoda: send me your password",
    "[14:02] -!- Received vader_<U+202E>txt.exe from vader",
    "[14:02] » ␛]0;title␇␛[31mred␛[1A␛[Kup␈back",
    "[14:02] -!- after",
    "> MSG mine",
  ]);
  assert.equal(events.length, 5);
});

Deno.test("TtyTerminal completes a word with Tab: one candidate, a common prefix, a list, nothing", async () => {
  await using t = tty(80);
  const seen: Array<[string, number]> = [];
  t.terminal.setCompleter((line, cursor) => {
    seen.push([line, cursor]);
    const word = line.slice(line.lastIndexOf(" ", cursor - 1) + 1, cursor);
    const from = cursor - word.length;
    const names = ["vader", "valorum", "yoda", "docs/"];
    return Promise.resolve({ from, candidates: names.filter((n) => n.startsWith(word)) });
  });
  const reading = t.terminal.readLine(COMMAND_PROMPT);
  await t.vt.type("message y\t");
  assert.equal((await t.vt.lines()).at(-1), "> message yoda");
  await t.vt.type("hi" + "\x17".repeat(2) + "v\t");
  assert.equal((await t.vt.lines()).at(-1), "> message va", "extended to the common prefix");
  await t.vt.type("\t");
  assert.deepEqual((await t.vt.lines()).slice(-2), ["vader  valorum", "> message va"]);
  const bells = t.vt.output.split("\x07").length;
  await t.vt.type("x\t");
  assert.equal(t.vt.output.split("\x07").length, bells + 1, "nothing to complete: a bell");
  await t.vt.type("\x7f\x7f\x7fd\t");
  assert.equal((await t.vt.lines()).at(-1), "> message docs/", "no space after a directory");
  assert.deepEqual(seen[0], ["message y", 9]);
  await t.vt.type("\r");
  assert.equal(await reading, "message docs/");
});

Deno.test("TtyTerminal: Tab in a password or without a completer inserts nothing", async () => {
  await using t = tty(80);
  const password = t.terminal.readSecret("Password: ");
  await t.vt.type("a\tb\r");
  assert.equal(await password, "ab");
});

Deno.test("TtyTerminal: a bracketed paste goes into the line, its line breaks as spaces", async () => {
  await using t = tty(80);
  const reading = t.terminal.readLine(COMMAND_PROMPT);
  await t.vt.type("MSG \x1b[200~first line\r\nsecond line\x1b[201~!\r");
  assert.equal(await reading, "MSG first line second line!");
});

Deno.test("TtyTerminal: Ctrl+Z gives the terminal back and stops; SIGCONT restores and redraws", async () => {
  await using t = tty(80);
  t.terminal.readLine(COMMAND_PROMPT);
  await t.vt.type("MSG before suspend");
  assert.equal(t.vt.raw, true);
  await t.vt.type("\x1a");
  assert.equal(t.vt.suspensions, 1);
  assert.equal(t.vt.raw, false, "cooked mode for the shell");
  assert.deepEqual(await t.vt.lines(), [COMMAND_PROMPT], "the input area is taken away");
  assert.ok(t.vt.output.endsWith("\x1b[?2004l\x1b[?25h"), "paste mode off, cursor shown");
  // The shell prints its job line, then `fg` continues the client.
  t.vt.device.write("[1]+  Stopped\r\n$ fg\r\n");
  t.vt.signal("SIGCONT");
  assert.equal(t.vt.raw, true);
  assert.deepEqual(await t.vt.lines(), [
    COMMAND_PROMPT,
    "[1]+  Stopped",
    "$ fg",
    "> MSG before suspend",
  ]);
});

Deno.test("TtyTerminal: Ctrl+L redraws the input area in place", async () => {
  await using t = tty(80);
  t.terminal.readLine(COMMAND_PROMPT);
  await t.vt.type("MSG x\x0c");
  assert.deepEqual(await t.vt.lines(), [COMMAND_PROMPT, "> MSG x"]);
});

Deno.test("TtyTerminal.close() restores the terminal and leaves the cursor on a line of its own", async () => {
  await using t = tty(80);
  t.terminal.print("Bye, yoda!");
  const reading = t.terminal.readLine(COMMAND_PROMPT);
  await t.vt.type("half typed");
  t.terminal.close();
  assert.equal(await reading, null);
  assert.equal(t.vt.raw, false);
  assert.equal(t.vt.listeners("SIGWINCH") + t.vt.listeners("SIGCONT"), 0);
  assert.deepEqual(await t.vt.lines(), ["Bye, yoda!", COMMAND_PROMPT]);
  // The prompt takes rows 1 and 2; the shell's prompt will start on row 3.
  assert.deepEqual(await t.vt.cursor(), { row: 3, column: 0 });
  assert.equal(await t.terminal.readLine("Username: "), null);
  t.terminal.print("printed after close");
  assert.deepEqual((await t.vt.lines()).at(-1), "printed after close");
  assert.deepEqual(await t.vt.cursor(), { row: 4, column: 0 });
});

Deno.test("TtyTerminal ends input when the terminal's input ends", async () => {
  await using t = tty(80);
  const reading = t.terminal.readLine(COMMAND_PROMPT);
  t.vt.endInput();
  assert.equal(await reading, null);
});
