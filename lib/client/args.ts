/** chat-client's command line: its arguments, options and help. */
import { parseArgs } from "node:util";
import { parseBytes } from "../p2p/mod.ts";
import { DEFAULT_MAX_FILE_BYTES } from "./p2p.ts";
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
  /** Offers of larger files are refused (`--max-file-size`). */
  maxFileBytes: number;
  /** PEM authorities to verify the server's certificate against, instead of pinning (`--ca`). */
  ca: string | undefined;
  /** Speak plain TCP to a server started with --no-tls. */
  noTls: boolean;
}

export const CLIENT_USAGE =
  "Usage: chat-client <server_IP> <server_port> <client_udp_server_port> [--download-dir DIR] " +
  "[--no-bell] [--reconnect-for S] [--max-file-size SIZE] [--ca FILE | --no-tls]";

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
  --max-file-size SIZE      refuse offers of larger files, telling the sender: bytes, or K, M, G,
                            T (powers of 1024), e.g. 500M, 1.5G; offers larger than the free space
                            in the download directory are refused too [4G]
  --ca FILE                 trust only the authorities in FILE (PEM): the server's certificate
                            must verify against them for server_IP, or the client refuses it
                            [by default: a certificate from a public authority is verified as
                            such; any other is pinned on first use in
                            $XDG_CONFIG_HOME/toom/known_servers (~/.config/toom/known_servers)]
  --no-tls                  speak plain TCP, to a server started with --no-tls (passwords and
                            peer-to-peer keys then cross the network in the clear)
  --help, --version

Exit status: 0 after logging out, 1 when login fails, the account is blocked or the server is
lost for good (reconnecting gave up or was refused), or the server's certificate changed or
does not verify (nothing is sent then), 2 for bad arguments (and a --ca FILE that cannot be read
or holds no certificate).`;

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
        "max-file-size": { type: "string" },
        ca: { type: "string" },
        "no-tls": { type: "boolean" },
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
  const maxFileSize = values["max-file-size"];
  const maxFileBytes = maxFileSize === undefined ? DEFAULT_MAX_FILE_BYTES : parseBytes(maxFileSize);
  if (maxFileBytes === undefined) {
    return usageExit(CLIENT_USAGE, `Invalid --max-file-size: ${maxFileSize} (e.g. 500M, 4G)`);
  }
  if (values.ca !== undefined && values["no-tls"]) {
    return usageExit(CLIENT_USAGE, "--ca and --no-tls cannot be combined");
  }
  return {
    serverHost: host,
    serverPort,
    udpPort,
    downloadDir: values["download-dir"] ?? ".",
    noBell: values["no-bell"] ?? false,
    reconnectForMs: reconnectFor * 1000,
    maxFileBytes,
    ca: values.ca,
    noTls: values["no-tls"] ?? false,
  };
}
