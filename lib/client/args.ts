/** chat-client's command line: its arguments, options and help. */
import { parseArgs } from "node:util";
import {
  type CliExit,
  isExit,
  parsePort,
  parseSeconds,
  readArgv,
  usageExit,
} from "../shared/cli.ts";

/** The client's settings from its command line. */
export interface ClientArgs {
  serverHost: string;
  serverPort: number;
  udpPort: number;
  downloadDir: string;
  /** No bell on an incoming direct or private message (terminal only). */
  noBell: boolean;
  /** How long to keep reconnecting after the connection is lost; 0 = do not reconnect. */
  reconnectForMs: number;
}

export const CLIENT_USAGE =
  "Usage: chat-client <server_IP> <server_port> <client_udp_server_port> [--download-dir DIR]";

const CLIENT_HELP = `${CLIENT_USAGE}

The TOOM chat client.

Arguments:
  server_IP                 the server's address
  server_port               the server's TCP port
  client_udp_server_port    UDP port for files and private messages from peers (0 = any)

Options:
  --download-dir DIR        where received files are saved [current directory]
  --no-bell                 no bell on an incoming direct or private message
  --reconnect-for S         after losing the server, keep reconnecting (and logging in again)
                            for S seconds; 0 = do not reconnect [120]
  --help, --version

Exit status: 0 after logging out, 1 when login fails, the account is blocked or the server is
lost for good (reconnecting gave up or was refused), 2 for bad arguments.`;

/** Parses the client's arguments. */
export function parseClientArgs(argv: string[]): ClientArgs | CliExit {
  const program = { name: "chat-client", usage: CLIENT_USAGE, help: CLIENT_HELP, positionals: 3 };
  const parsed = readArgv(argv, program, (args) =>
    parseArgs({
      args,
      allowPositionals: true,
      strict: true,
      options: {
        "download-dir": { type: "string" },
        "no-bell": { type: "boolean" },
        "reconnect-for": { type: "string" },
        help: { type: "boolean", short: "h" },
        version: { type: "boolean" },
      },
    }));
  if (isExit(parsed)) return parsed;
  const { values, positionals } = parsed;
  const [host, serverPortText, udpPortText] = positionals as [string, string, string];
  const serverPort = parsePort(serverPortText);
  if (serverPort === undefined || serverPort === 0) {
    return usageExit(CLIENT_USAGE, `Invalid server port: ${serverPortText}`);
  }
  const udpPort = parsePort(udpPortText);
  if (udpPort === undefined) return usageExit(CLIENT_USAGE, `Invalid UDP port: ${udpPortText}`);
  if (host.trim() === "") return usageExit(CLIENT_USAGE, "Server address must not be empty");
  const reconnectFor = parseSeconds(values["reconnect-for"], 120);
  if (reconnectFor === undefined) {
    return usageExit(CLIENT_USAGE, `Invalid --reconnect-for: ${values["reconnect-for"]}`);
  }
  return {
    serverHost: host,
    serverPort,
    udpPort,
    downloadDir: values["download-dir"] ?? ".",
    noBell: values["no-bell"] ?? false,
    reconnectForMs: reconnectFor * 1000,
  };
}
