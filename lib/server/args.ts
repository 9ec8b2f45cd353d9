/** chat-server's command line: its arguments, options and help. */
import { parseArgs } from "node:util";
import {
  type CliExit,
  isExit,
  parsePort,
  parseSeconds,
  readArgv,
  usageExit,
} from "../shared/cli.ts";

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

export const SERVER_USAGE =
  "Usage: chat-server <server_port> <number_of_consecutive_failed_attempts> [--host ADDR] " +
  "[--block-duration S] [--timeout S] [--credentials FILE] [--allow-register] " +
  "[--duplicate-login deny|replace] [--quiet]";

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

/** Parses the server's arguments. */
export function parseServerArgs(argv: string[]): ServerArgs | CliExit {
  const program = { name: "chat-server", usage: SERVER_USAGE, help: SERVER_HELP, positionals: 2 };
  const parsed = readArgv(argv, program, (args) =>
    parseArgs({
      args,
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
    }));
  if (isExit(parsed)) return parsed;
  const { values, positionals } = parsed;
  const [portText, attemptsText] = positionals as [string, string];
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
