/**
 * What both programs' command-line parsers share: the version, the shape of a parse that ends the
 * program (text to print and exit status), and the readers for ports and seconds. Parsing returns
 * a config or such an exit; only the entry points print and exit.
 */

/** The version both programs report. */
export const VERSION = "1.0.0";

/** A parse that ends the program: what to print, where, and the exit status. */
export interface CliExit {
  exit: number;
  stdout?: string;
  stderr?: string;
}

/** A TCP or UDP port number (0–65535), or undefined. */
export function parsePort(text: string | undefined): number | undefined {
  if (text === undefined || !/^\d{1,5}$/.test(text)) return undefined;
  const port = Number(text);
  return port <= 65535 ? port : undefined;
}

/** A non-negative number of seconds, `fallback` when absent, or undefined when malformed. */
export function parseSeconds(text: string | undefined, fallback: number): number | undefined {
  if (text === undefined) return fallback;
  if (!/^\d{1,9}(\.\d+)?$/.test(text)) return undefined;
  return Number(text);
}

/** A bad-arguments exit (status 2) with the problem and the usage. */
export function usageExit(usage: string, problem: string): CliExit {
  return { exit: 2, stderr: `${problem}\n${usage}\n` };
}

// node:util reads "-1" as a short option; arguments that look like negative numbers are
// positionals here (so they get the proper range message), so hide them from it.
const NEGATIVE = /^-\d/;
const HIDDEN = "\u0000";

/** Hides arguments that look like negative numbers from node:util, which would read options. */
export function hideNegatives(argv: string[]): string[] {
  return argv.map((arg) => NEGATIVE.test(arg) ? HIDDEN + arg : arg);
}

/** Undoes `hideNegatives` on positionals. */
export function unhide(values: string[]): string[] {
  return values.map((value) => value.startsWith(HIDDEN) ? value.slice(1) : value);
}

/** Whether a parse ended the program. */
export function isExit(value: object): value is CliExit {
  return "exit" in value;
}

/** What the parsers need to know of a program to end it early. */
export interface Program {
  /** Its name, as `--version` prints it. */
  name: string;
  usage: string;
  help: string;
  /** How many positional arguments it takes. */
  positionals: number;
}

/**
 * Runs node:util's parser on `argv` (negative-looking arguments kept as positionals), then ends
 * the program for `--help`, `--version`, an unknown option or the wrong number of positionals.
 * Otherwise returns the option values and the positionals.
 */
export function readArgv<T extends { help?: boolean; version?: boolean }>(
  argv: string[],
  program: Program,
  parse: (args: string[]) => { values: T; positionals: string[] },
): { values: T; positionals: string[] } | CliExit {
  let parsed;
  try {
    parsed = parse(hideNegatives(argv));
  } catch (error) {
    return usageExit(program.usage, (error as Error).message);
  }
  const { values, positionals } = parsed;
  if (values.help) return { exit: 0, stdout: program.help + "\n" };
  if (values.version) return { exit: 0, stdout: `${program.name} ${VERSION}\n` };
  if (positionals.length !== program.positionals) {
    return usageExit(
      program.usage,
      `Expected ${program.positionals} arguments, got ${positionals.length}.`,
    );
  }
  return { values, positionals: unhide(positionals) };
}
