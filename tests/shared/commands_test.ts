/** The command table of lib/shared/commands.ts: lookup, help, splitting and argument parsing. */
import assert from "node:assert/strict";
import {
  type Args,
  COMMAND_PROMPT,
  COMMANDS,
  type CommandSpec,
  findCommand,
  helpLines,
  MAX_TEXT_CHARS,
  parseArgs,
  quoteFileName,
  splitCommand,
  textProblem,
} from "../../lib/shared/commands.ts";
import { UsageError } from "../../lib/shared/errors.ts";

function spec(word: string): CommandSpec {
  const found = findCommand(word);
  assert.ok(found, `no command ${word}`);
  return found;
}

function local(year: number, month: number, day: number, h: number, m: number, s: number) {
  return new Date(year, month, day, h, m, s).getTime();
}

const T = local(2021, 1, 23, 15, 0, 0);
const TS = "23 Feb 2021 15:00:00";

function assertUsage(word: string, rest: string, detail?: string): void {
  const command = spec(word);
  assert.throws(() => parseArgs(command, rest), (error: unknown) => {
    assert.ok(error instanceof UsageError, `expected a UsageError, got ${error}`);
    assert.equal(error.usage, command.usage);
    assert.ok(
      error.message.includes(command.usage),
      `"${error.message}" does not show "${command.usage}"`,
    );
    if (detail !== undefined) assert.equal(error.message, `${detail}. Usage: ${command.usage}`);
    return true;
  });
}

Deno.test("every command has a name, usage and summary", () => {
  for (const command of COMMANDS) {
    assert.ok(command.name.length > 0);
    assert.ok(command.usage.length > 0, `${command.name} has no usage`);
    assert.ok(command.summary.length > 0, `${command.name} has no summary`);
    assert.ok(
      command.usage.toLowerCase().startsWith(command.name.toLowerCase()),
      `${command.name}'s usage does not start with its name`,
    );
  }
});

Deno.test("helpLines() shows every command's usage and summary", () => {
  const help = helpLines().join("\n");
  for (const command of COMMANDS) {
    const line = helpLines().find((l) => l.trimStart().startsWith(command.usage + " "));
    assert.ok(line, `help has no line for ${command.usage}:\n${help}`);
    assert.ok(line.includes(command.summary), `${command.name}'s summary is not in help`);
  }
  assert.equal(helpLines().length, COMMANDS.length + 1);
});

Deno.test("no two commands share a word", () => {
  const words = COMMANDS.flatMap((c) => [c.name, ...c.aliases].map((w) => w.toLowerCase()));
  assert.equal(new Set(words).size, words.length);
});

Deno.test({
  name: "COMMANDS includes every command the spec lists",
  fn() {
    for (
      const word of [
        "MSG",
        "DLT",
        "EDT",
        "RDM",
        "ATU",
        "OUT",
        "logout",
        "UPD",
        "message",
        "broadcast",
        "whoelse",
        "online",
        "whoelsesince",
        "block",
        "unblock",
        "startprivate",
        "getaddress",
        "private",
        "stopprivate",
        "passwd",
        "help",
      ]
    ) {
      assert.ok(findCommand(word), `${word} is not in COMMANDS`);
    }
  },
});

Deno.test("findCommand() matches command words case-insensitively", () => {
  for (const command of COMMANDS) {
    for (const word of [command.name, command.name.toLowerCase(), command.name.toUpperCase()]) {
      assert.equal(findCommand(word), command, word);
    }
  }
  assert.equal(findCommand("mSg")?.name, "MSG");
  assert.equal(findCommand("WHOELSESINCE")?.name, "whoelsesince");
});

Deno.test("findCommand() finds the logout and online aliases", () => {
  for (const word of ["logout", "LOGOUT", "LogOut"]) assert.equal(findCommand(word)?.name, "OUT");
  for (const word of ["online", "ONLINE", "Online"]) {
    assert.equal(findCommand(word)?.name, "whoelse");
  }
});

Deno.test("findCommand() returns undefined for unknown words", () => {
  for (
    const word of ["", "MS", "MSGX", " MSG", "MSG ", "constructor", "__proto__", "toString", "quit"]
  ) {
    assert.equal(findCommand(word), undefined, JSON.stringify(word));
  }
});

const SPLITS: [string, { word: string; rest: string }][] = [
  ["MSG hello world", { word: "MSG", rest: "hello world" }],
  ["MSG  two  spaces ", { word: "MSG", rest: " two  spaces " }],
  ["ATU", { word: "ATU", rest: "" }],
  ["  ATU  ", { word: "ATU", rest: " " }],
  ["ATU\t", { word: "ATU", rest: "" }],
  ["", { word: "", rest: "" }],
];

for (const [line, expected] of SPLITS) {
  Deno.test(`splitCommand(${JSON.stringify(line)}) splits after the first space`, () => {
    assert.deepEqual(splitCommand(line), expected);
  });
}

const EMPTY: Args = { number: 0, timestamp: 0, user: "", file: "", seconds: 0, text: "" };

const PARSED: [string, string, Partial<Args>][] = [
  ["MSG", "hello", { text: "hello" }],
  ["MSG", "do or do not, there is no try", { text: "do or do not, there is no try" }],
  ["MSG", "keeps  inner   spaces", { text: "keeps  inner   spaces" }],
  ["MSG", "trailing space ", { text: "trailing space " }],
  ["MSG", "#1 23 Feb 2021 15:00:00", { text: "#1 23 Feb 2021 15:00:00" }],
  ["MSG", "日本語 😀; semicolons; too", { text: "日本語 😀; semicolons; too" }],
  ["MSG", "x".repeat(MAX_TEXT_CHARS), { text: "x".repeat(MAX_TEXT_CHARS) }],
  ["MSG", "😀".repeat(MAX_TEXT_CHARS), { text: "😀".repeat(MAX_TEXT_CHARS) }],
  ["DLT", `#4 ${TS}`, { number: 4, timestamp: T }],
  ["DLT", `4 ${TS}`, { number: 4, timestamp: T }],
  ["DLT", `#1 23 feb 2021 15:00:00`, { number: 1, timestamp: T }],
  ["DLT", `#1 3 Feb 2021 5:06:07`, { number: 1, timestamp: local(2021, 1, 3, 5, 6, 7) }],
  ["DLT", `#123456789 ${TS}`, { number: 123456789, timestamp: T }],
  ["EDT", `#2 ${TS} new text`, { number: 2, timestamp: T, text: "new text" }],
  ["EDT", `2 ${TS} new  text  here`, { number: 2, timestamp: T, text: "new  text  here" }],
  ["EDT", `#2 ${TS} 24 Feb 2021 10:00:00`, {
    number: 2,
    timestamp: T,
    text: "24 Feb 2021 10:00:00",
  }],
  ["RDM", TS, { timestamp: T }],
  ["RDM", "29 Feb 2020 23:59:59", { timestamp: local(2020, 1, 29, 23, 59, 59) }],
  ["ATU", "", {}],
  ["OUT", "", {}],
  ["help", "", {}],
  ["whoelse", "", {}],
  ["whoelsesince", "0", { seconds: 0 }],
  ["whoelsesince", "300", { seconds: 300 }],
  ["message", "yoda hello there", { user: "yoda", text: "hello there" }],
  ["message", "Jose\u0301 hi", { user: "Jos\u00e9", text: "hi" }],
  ["broadcast", "hi all", { text: "hi all" }],
  ["block", "yoda", { user: "yoda" }],
  ["unblock", "yoda", { user: "yoda" }],
  ["passwd", "", {}],
];

for (const [word, rest, expected] of PARSED) {
  Deno.test(`parseArgs() reads ${word} ${JSON.stringify(rest.slice(0, 40))}`, () => {
    assert.deepEqual(parseArgs(spec(word), rest), { ...EMPTY, ...expected });
  });
}

Deno.test("parseArgs() ignores trailing spaces after a command without arguments", () => {
  assert.deepEqual(parseArgs(spec("ATU"), "   "), EMPTY);
});

const USAGE_ERRORS: [string, string, string?][] = [
  ["MSG", "", "Message must not be empty"],
  ["MSG", "   ", "Message must not be empty"],
  ["MSG", "x".repeat(MAX_TEXT_CHARS + 1), "Message is too long (at most 1000 characters)"],
  ["MSG", "😀".repeat(MAX_TEXT_CHARS + 1), "Message is too long (at most 1000 characters)"],
  ["MSG", "bell\u0007", "Message must not contain control characters"],
  ["MSG", "tab\there", "Message must not contain control characters"],
  ["MSG", "new\nline", "Message must not contain control characters"],
  ["MSG", "esc\u001b[31m", "Message must not contain control characters"],
  ["MSG", "c1\u0085", "Message must not contain control characters"],
  ["MSG", "sep\u2028", "Message must not contain control characters"],
  ["DLT", ""],
  ["DLT", "#4"],
  ["DLT", "#4 23 Feb 2021"],
  ["DLT", `#x ${TS}`, 'Invalid message number "#x"'],
  ["DLT", `## ${TS}`, 'Invalid message number "##"'],
  ["DLT", `# ${TS}`, 'Invalid message number "#"'],
  ["DLT", `##4 ${TS}`, 'Invalid message number "##4"'],
  ["DLT", `4# ${TS}`, 'Invalid message number "4#"'],
  ["DLT", `-4 ${TS}`, 'Invalid message number "-4"'],
  ["DLT", `4.0 ${TS}`, 'Invalid message number "4.0"'],
  ["DLT", `1234567890 ${TS}`, 'Invalid message number "1234567890"'],
  ["DLT", "#4 31 Feb 2021 15:00:00", 'Invalid timestamp "31 Feb 2021 15:00:00"'],
  ["DLT", `#4 ${TS} extra`],
  ["EDT", `#4 ${TS}`, "Message must not be empty"],
  ["EDT", `#4 ${TS} bad\u0000text`, "Message must not contain control characters"],
  ["EDT", "#4 23 Feb 2021 25:00:00 text", 'Invalid timestamp "23 Feb 2021 25:00:00"'],
  ["EDT", "#4 text only"],
  ["RDM", ""],
  ["RDM", "23 Feb 2021"],
  ["RDM", "yesterday"],
  ["RDM", "23 Feb 2021 24:00:00", 'Invalid timestamp "23 Feb 2021 24:00:00"'],
  ["RDM", "23 Fbr 2021 15:00:00", 'Invalid timestamp "23 Fbr 2021 15:00:00"'],
  ["RDM", "2021-02-23 15:00:00 x y"],
  ["RDM", `${TS} extra`],
  ["ATU", "extra"],
  ["OUT", "now"],
  ["help", "MSG"],
  ["whoelse", "10"],
  ["whoelsesince", ""],
  ["whoelsesince", "-1", 'Invalid number of seconds "-1"'],
  ["whoelsesince", "1.5", 'Invalid number of seconds "1.5"'],
  ["whoelsesince", "abc", 'Invalid number of seconds "abc"'],
  ["whoelsesince", "1e3", 'Invalid number of seconds "1e3"'],
  ["whoelsesince", "1234567890", 'Invalid number of seconds "1234567890"'],
  ["whoelsesince", "10 20"],
  ["message", ""],
  ["message", "yoda", "Message must not be empty"],
  ["message", "yoda  ", "Message must not be empty"],
  ["broadcast", "", "Message must not be empty"],
  ["block", ""],
  ["block", "yoda hans"],
  ["unblock", ""],
  ["passwd", "old new"],
];

for (const [word, rest, detail] of USAGE_ERRORS) {
  Deno.test(`parseArgs() rejects ${word} ${JSON.stringify(rest.slice(0, 40))} with its usage`, () => {
    assertUsage(word, rest, detail);
  });
}

Deno.test("parseArgs() reports a malformed RDM timestamp as a usage error showing the usage", () => {
  assert.throws(
    () => parseArgs(spec("RDM"), "23 Feb 2021 12:60:00"),
    new UsageError("RDM <dd Mmm yyyy hh:mm:ss>", 'Invalid timestamp "23 Feb 2021 12:60:00"'),
  );
  assert.throws(
    () => parseArgs(spec("RDM"), "23 Feb 2021 12:60:00"),
    { message: 'Invalid timestamp "23 Feb 2021 12:60:00". Usage: RDM <dd Mmm yyyy hh:mm:ss>' },
  );
});

const TEXT_PROBLEMS: [string, string | undefined][] = [
  ["hello", undefined],
  [" leading and trailing ", undefined],
  ["x".repeat(1000), undefined],
  ["é".repeat(1000), undefined],
  ["", "Message must not be empty"],
  [" \u3000 ", "Message must not be empty"],
  ["x".repeat(1001), "Message is too long (at most 1000 characters)"],
  ["\u007f", "Message must not contain control characters"],
  ["a\rb", "Message must not contain control characters"],
];

for (const [text, problem] of TEXT_PROBLEMS) {
  Deno.test(`textProblem(${JSON.stringify(text.slice(0, 20))}) is ${JSON.stringify(problem)}`, () => {
    assert.equal(textProblem(text), problem);
  });
}

Deno.test("COMMAND_PROMPT is the spec's prompt", () => {
  assert.equal(
    COMMAND_PROMPT,
    "Enter one of the following commands (MSG, DLT, EDT, RDM, ATU, OUT, UPD), or help:",
  );
});

// UPD's file name: one token, or quoted to hold spaces.

const FILE_NAMES: [string, string][] = [
  ["notes.txt", "notes.txt"],
  ['"my notes.txt"', "my notes.txt"],
  ["'my notes.txt'", "my notes.txt"],
  [String.raw`my\ notes.txt`, "my notes.txt"],
  [String.raw`"say \"hi\".txt"`, 'say "hi".txt'],
  [String.raw`"back\\slash"`, String.raw`back\slash`],
  [String.raw`"C:\dir\x.txt"`, String.raw`C:\dir\x.txt`],
  [String.raw`'it\s literal'`, String.raw`it\s literal`],
  ['"it\'s.txt"', "it's.txt"],
  ["it's.txt", "it's.txt"],
  [String.raw`it\'s\ here.txt`, "it's here.txt"],
  [String.raw`dir\file.txt`, String.raw`dir\file.txt`],
  ["~/notes.txt", "~/notes.txt"],
  ['"  spaced  "', "  spaced  "],
  ["日本語 ", "日本語"],
  ['"日本 語.txt"', "日本 語.txt"],
];

for (const [typed, file] of FILE_NAMES) {
  Deno.test(`parseArgs() reads the UPD file name ${typed} as ${JSON.stringify(file)}`, () => {
    assert.deepEqual(parseArgs(spec("UPD"), `hans ${typed}`), { ...EMPTY, user: "hans", file });
    assert.deepEqual(parseArgs(spec("UPD"), `hans  ${typed}`).file, file, "after more spaces");
  });
}

const BAD_FILE_NAMES: [string, string?][] = [
  ["hans"],
  ["hans   "],
  ['hans "unclosed.txt', "File name has an unclosed quote"],
  ["hans 'unclosed.txt", "File name has an unclosed quote"],
  ['hans "a"b', "File name must end at its closing quote"],
  ['hans ""', "File name must not be empty"],
  ['hans "a b" extra'],
  ["hans a b"],
];

for (const [rest, detail] of BAD_FILE_NAMES) {
  Deno.test(`parseArgs() rejects UPD ${rest} with its usage`, () => {
    assertUsage("UPD", rest, detail);
  });
}

Deno.test("quoteFileName() writes a name that parseArgs() reads back as it was", () => {
  const names = [
    "notes.txt",
    "my notes.txt",
    'say "hi".txt',
    "it's.txt",
    String.raw`back\slash`,
    "trailing\\",
    '"',
    " lead",
    "日本 語.txt",
    "~/x y",
  ];
  for (const name of names) {
    const quoted = quoteFileName(name);
    assert.equal(parseArgs(spec("UPD"), `hans ${quoted}`).file, name, quoted);
  }
  assert.equal(quoteFileName("notes.txt"), "notes.txt");
  assert.equal(quoteFileName("my notes.txt"), '"my notes.txt"');
});
