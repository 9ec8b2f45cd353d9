/**
 * Command-line parsing for both programs. Parsing returns a config or a failure with the text
 * to print and the exit status; only the entry points print and exit.
 */
import { parseArgs } from "node:util";

/** The version both programs report. */
export const VERSION = "1.0.0";

/** A parse that ends the program: what to print, where, and the exit status. */
export interface CliExit {
  exit: number;
  stdout?: string;
  stderr?: string;
}

/** The server's settings from its command line. */
export interface ServerArgs {
  port: number;
  maxFailures: number;
  host: string;
  blockDurationSeconds: number;
  timeoutSeconds: number;
  credentials: string;
  allowRegister: boolean;
  duplicateLogin: "deny" | "replace";
  quiet: boolean;
}

/** The client's settings from its command line. */
export interface ClientArgs {
  serverHost: string;
  serverPort: number;
  udpPort: number;
  downloadDir: string;
}

export const SERVER_USAGE =
  "Usage: chat-server <server_port> <number_of_consecutive_failed_attempts> [--host ADDR] " +
  "[--block-duration S] [--timeout S] [--credentials FILE] [--allow-register] " +
  "[--duplicate-login deny|replace] [--quiet]";

export const CLIENT_USAGE =
  "Usage: chat-client <server_IP> <server_port> <client_udp_server_port> [--download-dir DIR]";

const SERVER_HELP = `${SERVER_USAGE}

The TOOM chat server. It reads credentials.txt and writes userlog.txt and messagelog.txt in
its current directory.

Arguments:
  server_port                             TCP port to listen on (0 = any free port)
  number_of_consecutive_failed_attempts   wrong passwords in a row before a lockout (1-5)

Options:
  --host ADDR                  address to listen on [0.0.0.0]
  --block-duration S           lockout length in seconds [10]
  --timeout S                  log out users idle for S seconds [0 = off]
  --credentials FILE           accounts file [./credentials.txt]
  --allow-register             an unknown username at login creates an account
  --duplicate-login deny|replace
                               a second login of an online user is refused, or replaces
                               the first session [deny]
  --quiet                      do not print a line per command
  --help, --version

Exit status: 0 after a clean stop (Ctrl+C), 1 if the port cannot be bound, 2 for bad arguments.`;

const CLIENT_HELP = `${CLIENT_USAGE}

The TOOM chat client.

Arguments:
  server_IP                 the server's address
  server_port               the server's TCP port
  client_udp_server_port    UDP port for files and private messages from peers (0 = any)

Options:
  --download-dir DIR        where received files are saved [current directory]
  --help, --version

Exit status: 0 after logging out, 1 when login fails, the account is blocked or the server is
lost, 2 for bad arguments.`;

function parsePort(text: string | undefined): number | undefined {
  if (text === undefined || !/^\d{1,5}$/.test(text)) return undefined;
  const port = Number(text);
  return port <= 65535 ? port : undefined;
}

function parseSeconds(text: string | undefined, fallback: number): number | undefined {
  if (text === undefined) return fallback;
  if (!/^\d{1,9}(\.\d+)?$/.test(text)) return undefined;
  return Number(text);
}

function usageExit(usage: string, problem: string): CliExit {
  return { exit: 2, stderr: `${problem}\n${usage}\n` };
}

// node:util reads "-1" as a short option; arguments that look like negative numbers are
// positionals here (so they get the proper range message), so hide them from it.
const NEGATIVE = /^-\d/;
const HIDDEN = "\u0000";

function hideNegatives(argv: string[]): string[] {
  return argv.map((arg) => NEGATIVE.test(arg) ? HIDDEN + arg : arg);
}

function unhide(values: string[]): string[] {
  return values.map((value) => value.startsWith(HIDDEN) ? value.slice(1) : value);
}

/** Parses the server's arguments. */
export function parseServerArgs(argv: string[]): ServerArgs | CliExit {
  let parsed;
  try {
    parsed = parseArgs({
      args: hideNegatives(argv),
      allowPositionals: true,
      strict: true,
      options: {
        host: { type: "string" },
        "block-duration": { type: "string" },
        timeout: { type: "string" },
        credentials: { type: "string" },
        "allow-register": { type: "boolean" },
        "duplicate-login": { type: "string" },
        quiet: { type: "boolean" },
        help: { type: "boolean", short: "h" },
        version: { type: "boolean" },
      },
    });
  } catch (error) {
    return usageExit(SERVER_USAGE, (error as Error).message);
  }
  const { values, positionals } = parsed;
  if (values.help) return { exit: 0, stdout: SERVER_HELP + "\n" };
  if (values.version) return { exit: 0, stdout: `chat-server ${VERSION}\n` };
  if (positionals.length !== 2) {
    return usageExit(SERVER_USAGE, `Expected 2 arguments, got ${positionals.length}.`);
  }
  const [portText, attemptsText] = unhide(positionals) as [string, string];
  const port = parsePort(portText);
  if (port === undefined) return usageExit(SERVER_USAGE, `Invalid port: ${portText}`);
  if (!/^\d+$/.test(attemptsText) || Number(attemptsText) < 1 || Number(attemptsText) > 5) {
    return {
      exit: 2,
      stderr: `Invalid number of allowed failed consecutive attempt: ${attemptsText}. ` +
        "The valid value of argument number is an integer between 1 and 5\n",
    };
  }
  const blockDuration = parseSeconds(values["block-duration"], 10);
  if (blockDuration === undefined) {
    return usageExit(SERVER_USAGE, `Invalid --block-duration: ${values["block-duration"]}`);
  }
  const timeout = parseSeconds(values.timeout, 0);
  if (timeout === undefined) return usageExit(SERVER_USAGE, `Invalid --timeout: ${values.timeout}`);
  const duplicate = values["duplicate-login"] ?? "deny";
  if (duplicate !== "deny" && duplicate !== "replace") {
    return usageExit(SERVER_USAGE, `Invalid --duplicate-login: ${duplicate} (deny or replace)`);
  }
  return {
    port,
    maxFailures: Number(attemptsText),
    host: values.host ?? "0.0.0.0",
    blockDurationSeconds: blockDuration,
    timeoutSeconds: timeout,
    credentials: values.credentials ?? "credentials.txt",
    allowRegister: values["allow-register"] ?? false,
    duplicateLogin: duplicate,
    quiet: values.quiet ?? false,
  };
}

/** Parses the client's arguments. */
export function parseClientArgs(argv: string[]): ClientArgs | CliExit {
  let parsed;
  try {
    parsed = parseArgs({
      args: hideNegatives(argv),
      allowPositionals: true,
      strict: true,
      options: {
        "download-dir": { type: "string" },
        help: { type: "boolean", short: "h" },
        version: { type: "boolean" },
      },
    });
  } catch (error) {
    return usageExit(CLIENT_USAGE, (error as Error).message);
  }
  const { values, positionals } = parsed;
  if (values.help) return { exit: 0, stdout: CLIENT_HELP + "\n" };
  if (values.version) return { exit: 0, stdout: `chat-client ${VERSION}\n` };
  if (positionals.length !== 3) {
    return usageExit(CLIENT_USAGE, `Expected 3 arguments, got ${positionals.length}.`);
  }
  const [host, serverPortText, udpPortText] = unhide(positionals) as [string, string, string];
  const serverPort = parsePort(serverPortText);
  if (serverPort === undefined || serverPort === 0) {
    return usageExit(CLIENT_USAGE, `Invalid server port: ${serverPortText}`);
  }
  const udpPort = parsePort(udpPortText);
  if (udpPort === undefined) return usageExit(CLIENT_USAGE, `Invalid UDP port: ${udpPortText}`);
  if (host.trim() === "") return usageExit(CLIENT_USAGE, "Server address must not be empty");
  return { serverHost: host, serverPort, udpPort, downloadDir: values["download-dir"] ?? "." };
}

/** Whether a parse ended the program. */
export function isExit(value: object): value is CliExit {
  return "exit" in value;
}
