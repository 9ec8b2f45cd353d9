/**
 * Every command a user can type: its words, argument shape, where it runs and its help. The
 * server's dispatcher and the client both read this one table.
 */
import { UsageError } from "./errors.ts";
import { parseTimestamp } from "./timestamp.ts";

/** The pieces a command line can hold, in the order a command lists them. */
export type ArgKind = "number" | "timestamp" | "user" | "file" | "seconds" | "text";

/** Where a command is carried out. */
export type Runs = "server" | "client";

/** One command's description. */
export interface CommandSpec {
  /** Canonical word, as shown in help. */
  name: string;
  aliases: readonly string[];
  args: readonly ArgKind[];
  /** `server`: sent to the server as typed; `client`: the client does (part of) the work. */
  runs: Runs;
  usage: string;
  summary: string;
}

/** Parsed arguments; only the fields a command lists are meaningful. */
export interface Args {
  number: number;
  timestamp: number;
  user: string;
  file: string;
  seconds: number;
  text: string;
}

/** Longest message text, in characters. */
export const MAX_TEXT_CHARS = 1000;

/** The refusal of a file name that would not show as what it is (see lib/shared/display.ts). */
export const UNSAFE_FILE_NAME =
  "Error. File names cannot contain control or invisible formatting characters.";

/** The command table. */
export const COMMANDS: readonly CommandSpec[] = [
  {
    name: "MSG",
    aliases: [],
    args: ["text"],
    runs: "server",
    usage: "MSG <message>",
    summary: "Post a message to the board.",
  },
  {
    name: "DLT",
    aliases: [],
    args: ["number", "timestamp"],
    runs: "server",
    usage: "DLT <#n> <dd Mmm yyyy hh:mm:ss>",
    summary: "Delete your message #n, given its current timestamp.",
  },
  {
    name: "EDT",
    aliases: [],
    args: ["number", "timestamp", "text"],
    runs: "server",
    usage: "EDT <#n> <dd Mmm yyyy hh:mm:ss> <message>",
    summary: "Replace the text of your message #n, given its current timestamp.",
  },
  {
    name: "RDM",
    aliases: [],
    args: ["timestamp"],
    runs: "server",
    usage: "RDM <dd Mmm yyyy hh:mm:ss>",
    summary: "Read every board message posted or edited after the timestamp.",
  },
  {
    name: "ATU",
    aliases: [],
    args: [],
    runs: "server",
    usage: "ATU",
    summary: "List the other active users with their addresses and UDP ports.",
  },
  {
    name: "OUT",
    aliases: ["logout"],
    args: [],
    runs: "server",
    usage: "OUT",
    summary: "Log out and exit (also: logout).",
  },
  {
    name: "message",
    aliases: [],
    args: ["user", "text"],
    runs: "server",
    usage: "message <user> <message>",
    summary: "Send a direct message; kept for the user if they are offline.",
  },
  {
    name: "broadcast",
    aliases: [],
    args: ["text"],
    runs: "server",
    usage: "broadcast <message>",
    summary: "Send a message to every online user.",
  },
  {
    name: "whoelse",
    aliases: ["online"],
    args: [],
    runs: "server",
    usage: "whoelse",
    summary: "List the other online users (also: online).",
  },
  {
    name: "whoelsesince",
    aliases: [],
    args: ["seconds"],
    runs: "server",
    usage: "whoelsesince <seconds>",
    summary: "List the users online at any moment in the last <seconds> seconds.",
  },
  {
    name: "block",
    aliases: [],
    args: ["user"],
    runs: "server",
    usage: "block <user>",
    summary: "Stop a user reaching you or seeing you online.",
  },
  {
    name: "unblock",
    aliases: [],
    args: ["user"],
    runs: "server",
    usage: "unblock <user>",
    summary: "Undo block.",
  },
  {
    name: "UPD",
    aliases: [],
    args: ["user", "file"],
    runs: "server",
    usage: "UPD <user> <filename>",
    summary: "Send a file to an online user, directly over UDP.",
  },
  {
    name: "startprivate",
    aliases: ["getaddress"],
    args: ["user"],
    runs: "server",
    usage: "startprivate <user>",
    summary: "Ask a user for a private (peer-to-peer) session (also: getaddress).",
  },
  {
    name: "private",
    aliases: [],
    args: ["user", "text"],
    runs: "client",
    usage: "private <user> <message>",
    summary: "Send a private message directly over UDP (after startprivate).",
  },
  {
    name: "stopprivate",
    aliases: [],
    args: ["user"],
    runs: "server",
    usage: "stopprivate <user>",
    summary: "End a private session; the peer is told.",
  },
  {
    name: "passwd",
    aliases: [],
    args: [],
    runs: "client",
    usage: "passwd",
    summary: "Change your password (asks for the old and the new one).",
  },
  {
    name: "help",
    aliases: [],
    args: [],
    runs: "server",
    usage: "help",
    summary: "Show every command with its syntax.",
  },
];

const BY_WORD = new Map<string, CommandSpec>();
for (const spec of COMMANDS) {
  for (const word of [spec.name, ...spec.aliases]) BY_WORD.set(word.toLowerCase(), spec);
}

/** Finds a command by any of its words, case-insensitively. */
export function findCommand(word: string): CommandSpec | undefined {
  return BY_WORD.get(word.toLowerCase());
}

/** Splits a line into its command word and the rest (after one separating space). */
export function splitCommand(line: string): { word: string; rest: string } {
  const trimmed = line.replace(/^\s+/, "");
  const space = trimmed.indexOf(" ");
  return space < 0
    ? { word: trimmed.trimEnd(), rest: "" }
    : { word: trimmed.slice(0, space), rest: trimmed.slice(space + 1) };
}

/** A line as typed: the command its first word names (if any) and the text after that word. */
export interface CommandLine {
  line: string;
  word: string;
  rest: string;
  spec: CommandSpec | undefined;
}

/** Reads a typed line once, for everyone who acts on it. */
export function readCommandLine(line: string): CommandLine {
  const { word, rest } = splitCommand(line);
  return { line, word, rest, spec: findCommand(word) };
}

// deno-lint-ignore no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;

/** Why a message text cannot be sent, or undefined when it can. */
export function textProblem(text: string): string | undefined {
  if (text.trim() === "") return "Message must not be empty";
  if ([...text].length > MAX_TEXT_CHARS) {
    return `Message is too long (at most ${MAX_TEXT_CHARS} characters)`;
  }
  if (CONTROL.test(text)) return "Message must not contain control characters";
  return undefined;
}

/** Parses the text after a command word according to its argument shape. */
export function parseArgs(spec: CommandSpec, rest: string): Args {
  const args: Args = { number: 0, timestamp: 0, user: "", file: "", seconds: 0, text: "" };
  let remaining = rest;
  const usage = (detail?: string) => new UsageError(spec.usage, detail);
  const take = (count: number): string => {
    const tokens: string[] = [];
    for (let i = 0; i < count; i++) {
      remaining = remaining.replace(/^ +/, "");
      const space = remaining.indexOf(" ");
      const token = space < 0 ? remaining : remaining.slice(0, space);
      if (token === "") throw usage();
      tokens.push(token);
      remaining = space < 0 ? "" : remaining.slice(space + 1);
    }
    return tokens.join(" ");
  };
  for (const kind of spec.args) {
    switch (kind) {
      case "number": {
        const token = take(1);
        if (!/^#?\d{1,9}$/.test(token)) throw usage(`Invalid message number "${token}"`);
        args.number = Number(token.replace("#", ""));
        break;
      }
      case "timestamp": {
        const token = take(4);
        const time = parseTimestamp(token);
        if (time === undefined) throw usage(`Invalid timestamp "${token}"`);
        args.timestamp = time;
        break;
      }
      case "seconds": {
        const token = take(1);
        if (!/^\d{1,9}$/.test(token)) throw usage(`Invalid number of seconds "${token}"`);
        args.seconds = Number(token);
        break;
      }
      case "user":
        args.user = take(1).normalize("NFC");
        break;
      case "file": {
        remaining = remaining.replace(/^ +/, "");
        if (remaining === "") throw usage();
        const read = readFileToken(remaining);
        if (typeof read === "string") throw usage(read);
        args.file = read.token;
        remaining = read.rest;
        break;
      }
      case "text": {
        const problem = textProblem(remaining);
        if (problem) throw usage(problem);
        args.text = remaining;
        remaining = "";
        break;
      }
    }
  }
  if (remaining.trim() !== "") throw usage();
  return args;
}

/** Characters a backslash escapes in a plain file name (and `"` and `\` inside "…"). */
const ESCAPABLE = new Set([" ", '"', "'", "\\"]);

/**
 * Reads a file name at the start of `text`: `"…"` (where `\"` and `\\` stand for `"` and `\`),
 * `'…'` (taken literally), or a plain token up to the next space, in which a backslash before a
 * space, a quote or a backslash stands for that character (any other backslash is kept). Returns
 * the name and the text after the space that ends it, or why it cannot be read.
 */
function readFileToken(text: string): { token: string; rest: string } | string {
  const chars = [...text];
  let token = "";
  let i = 0;
  const quote = chars[0];
  if (quote === '"' || quote === "'") {
    for (i = 1;; i++) {
      const char = chars[i];
      if (char === undefined) return "File name has an unclosed quote";
      if (char === quote) break;
      const next = chars[i + 1];
      if (quote === '"' && char === "\\" && (next === '"' || next === "\\")) {
        token += next;
        i++;
      } else {
        token += char;
      }
    }
    i++;
    if (chars[i] !== undefined && chars[i] !== " ") {
      return "File name must end at its closing quote";
    }
  } else {
    for (; i < chars.length && chars[i] !== " "; i++) {
      const char = chars[i]!;
      const next = chars[i + 1];
      if (char === "\\" && next !== undefined && ESCAPABLE.has(next)) {
        token += next;
        i++;
      } else {
        token += char;
      }
    }
  }
  if (token === "") return "File name must not be empty";
  return { token, rest: chars.slice(i + 1).join("") };
}

/**
 * Writes `name` as one file-name argument that `parseArgs` reads back as `name`: as it is when
 * it holds no space, quote or backslash, otherwise in double quotes.
 */
export function quoteFileName(name: string): string {
  if (name !== "" && !/[ "'\\]/.test(name)) return name;
  return `"${name.replace(/["\\]/g, "\\$&")}"`;
}

/** The help text: every command with its syntax and what it does. */
export function helpLines(): string[] {
  const width = Math.max(...COMMANDS.map((c) => c.usage.length));
  return [
    "Commands (command words are case-insensitive):",
    ...COMMANDS.map((c) => `  ${c.usage.padEnd(width)}  ${c.summary}`),
  ];
}

/** The prompt shown after login and after every command's result. */
export const COMMAND_PROMPT =
  "Enter one of the following commands (MSG, DLT, EDT, RDM, ATU, OUT, UPD), or help:";
