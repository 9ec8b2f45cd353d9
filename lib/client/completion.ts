/**
 * What Tab completes on a terminal: command words, the names of users this client has seen (from
 * presence, messages and the lists the server sent), and, after `UPD <user>`, file names, with spaces
 * escaped, with `~` for the home directory.
 */
import { COMMANDS, findCommand } from "../shared/commands.ts";
import type { EventFrame } from "../shared/protocol.ts";
import type { Completion } from "./terminal.ts";

/** Usernames this client has seen, most recent last. */
export class KnownUsers {
  readonly #names = new Set<string>();

  /** The user this client is logged in as, never offered. */
  self = "";

  /** Remembers a name (ignoring oneself and anything that cannot be a username). */
  add(name: string): void {
    if (name === this.self || !/^[^\s/\\]{1,32}$/u.test(name)) return;
    this.#names.delete(name);
    this.#names.add(name);
  }

  /** Learns the names an event mentions. */
  seeEvent(event: EventFrame): void {
    switch (event.kind) {
      case "presence":
        return this.add(event.data.user);
      case "message":
      case "broadcast":
        return this.add(event.data.from);
      case "ask":
        return this.add(event.data.from);
      case "ticket":
        return this.add(event.data.ticket.peer);
      case "private-stop":
        return this.add(event.data.peer);
      default:
        return;
    }
  }

  /** Learns the names in a reply to `whoelse`, `whoelsesince` or `ATU`. */
  seeReply(command: string | undefined, lines: string[]): void {
    if (command === "whoelse" || command === "whoelsesince") {
      for (const line of lines) if (!line.includes(" ")) this.add(line);
    } else if (command === "ATU") {
      for (const line of lines) {
        const match = /^([^,\s]+), /.exec(line);
        if (match) this.add(match[1]!);
      }
    }
  }

  /** The names seen, in the order last seen. */
  get names(): string[] {
    return [...this.#names];
  }
}

/** Where completion reads the file system; tests pass a fake. */
export interface FileLister {
  /** The entries of `dir` with whether each is a directory; empty when it cannot be read. */
  list(dir: string): Promise<Array<{ name: string; isDirectory: boolean }>>;
  home(): string | undefined;
}

/** The real file system. */
export const DISK: FileLister = {
  async list(dir) {
    const entries: Array<{ name: string; isDirectory: boolean }> = [];
    try {
      for await (const entry of Deno.readDir(dir)) {
        entries.push({ name: entry.name, isDirectory: entry.isDirectory });
      }
    } catch {
      // Unreadable or missing: nothing to offer.
    }
    return entries;
  },
  home: () => {
    try {
      return Deno.env.get("HOME");
    } catch {
      return undefined;
    }
  },
};

/** The words of `text`, with where each starts; a quoted word may hold spaces. */
function words(text: string): Array<{ start: number; raw: string }> {
  const found: Array<{ start: number; raw: string }> = [];
  let i = 0;
  while (i < text.length) {
    while (i < text.length && text[i] === " ") i++;
    if (i >= text.length) break;
    const start = i;
    let quote = "";
    while (i < text.length && (quote || text[i] !== " ")) {
      const c = text[i]!;
      if (quote && c === quote) quote = "";
      else if (!quote && (c === '"' || c === "'")) quote = c;
      else if (!quote && c === "\\") i++;
      i++;
    }
    found.push({ start, raw: text.slice(start, i) });
  }
  return found;
}

/** A file name as typed (quotes and backslashes removed). */
function unquote(raw: string): string {
  let out = "";
  let quote = "";
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i]!;
    if (quote && c === quote) quote = "";
    else if (!quote && (c === '"' || c === "'")) quote = c;
    else if (!quote && c === "\\" && i + 1 < raw.length) out += raw[++i];
    else out += c;
  }
  return out;
}

/** A path written so that the command line reads it back as one word (spaces escaped). */
function escapePath(path: string): string {
  return path.replace(/([\s"'\\])/g, "\\$1");
}

async function completeFile(raw: string, files: FileLister): Promise<string[]> {
  const typed = unquote(raw);
  const home = files.home();
  const expanded = home && (typed === "~" || typed.startsWith("~/"))
    ? home + typed.slice(1)
    : typed;
  const slash = expanded.lastIndexOf("/");
  const dir = slash < 0 ? "." : expanded.slice(0, slash + 1) || "/";
  const prefix = expanded.slice(slash + 1);
  // What the user typed before the last slash is kept as typed (`~/` stays `~/`).
  const typedDir = slash < 0 ? "" : typed.slice(0, typed.lastIndexOf("/") + 1);
  const entries = await files.list(dir);
  return entries
    .filter((e) => e.name.startsWith(prefix) && (prefix.startsWith(".") || !e.name.startsWith(".")))
    .map((e) => escapePath(typedDir + e.name) + (e.isDirectory ? "/" : ""))
    .sort();
}

/**
 * Completes the word before `cursor`: the command word first, then a username where the command
 * takes one, then a file name for `UPD`.
 */
export async function complete(
  line: string,
  cursor: number,
  users: KnownUsers,
  files: FileLister = DISK,
): Promise<Completion> {
  const before = line.slice(0, cursor);
  const typed = words(before);
  const endsInSpace = before === "" || before.endsWith(" ");
  const current = endsInSpace ? { start: cursor, raw: "" } : typed.at(-1)!;
  const index = endsInSpace ? typed.length : typed.length - 1;
  const prefix = current.raw;
  if (index === 0) {
    const lower = prefix.toLowerCase();
    const candidates = COMMANDS.flatMap((c) => [c.name, ...c.aliases])
      .filter((word) => word.toLowerCase().startsWith(lower));
    return { from: current.start, candidates: [...new Set(candidates)].sort() };
  }
  const spec = findCommand(typed[0]!.raw);
  const kind = spec?.args[index - 1];
  if (kind === "user") {
    return {
      from: current.start,
      candidates: users.names.filter((name) => name.startsWith(prefix)).sort(),
    };
  }
  if (kind === "file") {
    return { from: current.start, candidates: await completeFile(prefix, files) };
  }
  return { from: current.start, candidates: [] };
}
