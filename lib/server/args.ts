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
  /** Connections allowed at once; undefined = derived from the free descriptors (limits.ts). */
  maxConnections: number | undefined;
  /** Per source address: connections not logged in, failed logins a minute, accounts an hour. */
  maxPendingPerIp: number;
  maxFailuresPerIp: number;
  maxRegistrationsPerIp: number;
  allowRegister: boolean;
  duplicateLogin: "deny" | "replace";
  quiet: boolean;
  /** The certificate and key to use (`--tls-cert`, `--tls-key`); both or neither. */
  tlsCert: string | undefined;
  tlsKey: string | undefined;
  /** Speak the plain protocol, without TLS. */
  noTls: boolean;
  /** Every connection opens with a load balancer's PROXY protocol header (`--proxy-protocol`). */
  proxyProtocol: boolean;
  /** The directory of toom.db and the server's other files; undefined = the current one. */
  dataDir: string | undefined;
  /** The board survives restarts. */
  keepBoard: boolean;
  /** How much a commit of toom.db waits for the disk. */
  sync: "full" | "normal";
  /** Cluster mode: the PostgreSQL database the nodes share (`--database URL`), instead of toom.db. */
  database?: string;
  /** This node's id in the cluster (`--node-id`); made up at start when absent. */
  nodeId?: string;
}

/** `chat-server --hash-credentials`: rewrite the clear-text passwords as hashes, then exit. */
export interface HashCredentialsArgs {
  hashCredentials: true;
  credentials: string;
}

export const SERVER_USAGE =
  "Usage: chat-server <server_port> <number_of_consecutive_failed_attempts> [--host ADDR] " +
  "[--block-duration S] [--timeout S] [--credentials FILE] [--allow-register] " +
  "[--max-connections N] [--max-pending-per-ip N] [--max-failures-per-ip N] " +
  "[--max-registrations-per-ip N] " +
  "[--duplicate-login deny|replace] [--quiet] " +
  "[--tls-cert FILE --tls-key FILE | --no-tls [--proxy-protocol]] " +
  "[--data-dir DIR] [--keep-board] [--sync full|normal] [--database URL [--node-id ID]]";

const SERVER_HELP = `${SERVER_USAGE}

The TOOM chat server. It reads credentials.txt, writes userlog.txt and messagelog.txt, and
keeps what must survive a restart (offline messages, blocks, last-seen times, lockouts) in
toom.db, all in its current directory or --data-dir.

Arguments:
  server_port                             TCP port to listen on (0 = any free port)
  number_of_consecutive_failed_attempts   wrong passwords in a row before a lockout (1-5)

chat-server --hash-credentials [--credentials FILE] rewrites every clear-text password in
the accounts file as an scrypt hash (keeping every other line and the file's mode), prints how
many it hashed and exits: 0 when done, 1 if the file cannot be read or written.

Options:
  --host ADDR                  address to listen on [0.0.0.0]
  --block-duration S           lockout length in seconds [10]
  --timeout S                  log out users idle for S seconds [0 = off]
  --credentials FILE           accounts file [./credentials.txt]
  --max-connections N          connections at once; beyond it a new one closes the oldest
                               not logged in, or is closed [the file descriptors free at
                               start less 32, at most 16384]
  --max-pending-per-ip N       connections not logged in per address (IPv4, IPv6 /64); a new
                               one beyond it closes that address's oldest [32; 0 = no limit]
  --max-failures-per-ip N      failed logins (and wrong passwd old passwords) per minute per
                               address; beyond it logins are refused unchecked [30; 0 = none]
  --max-registrations-per-ip N accounts created per hour per address [10; 0 = no limit]
  --allow-register             an unknown username at login creates an account
  --duplicate-login deny|replace
                               a second login of an online user is refused, or replaces
                               the first session [deny]
  --quiet                      do not print a line per command
  --tls-cert FILE, --tls-key FILE
                               use this certificate (PEM, may be a chain) and key for TLS
                               instead of the self-signed pair in ./toom-cert.pem and
                               ./toom-key.pem (made at the first start)
  --no-tls                     speak the plain protocol: passwords and peer-to-peer keys
                               cross the network in the clear (clients need --no-tls too)
  --proxy-protocol             every connection opens with a PROXY protocol header (v1 or v2)
                               from a load balancer that terminates TLS in front of the
                               server; users' addresses are taken from it (needs --no-tls)
  --data-dir DIR               keep toom.db, the logs, the certificate and (unless
                               --credentials says otherwise) credentials.txt in DIR, made
                               if missing [the current directory]
  --keep-board                 the board survives restarts: messagelog.txt is written from
                               toom.db at start instead of starting empty
  --sync full|normal           full: a change is on the disk before it is acknowledged
                               (survives a power loss); normal: the system has it (survives
                               the server being killed, not a power loss) [full]
  --database URL               run as a node of a cluster sharing the PostgreSQL database at
                               URL (postgres://USER@HOST:PORT/DB) instead of toom.db: every
                               node serves the same users, board and messages
  --node-id ID                 this node's id in the cluster, unique among the live nodes
                               [made up at start]
  --help, --version

Exit status: 0 after a clean stop (Ctrl+C), 1 if the port cannot be bound, the TLS
certificate cannot be read, made or used, toom.db cannot be used (damaged, not TOOM's,
from a newer server, or not writable) or the cluster cannot be joined, 2 for bad arguments.`;

/** The usage of the second form, which rewrites the credentials file and exits. */
export const HASH_CREDENTIALS_USAGE = "Usage: chat-server --hash-credentials [--credentials FILE]";

/** Parses the server's arguments. */
export function parseServerArgs(argv: string[]): ServerArgs | HashCredentialsArgs | CliExit {
  // --hash-credentials is a command of its own, without the two positionals.
  const hashing = argv.some((arg) => arg.split("=")[0] === "--hash-credentials");
  const program = {
    name: "chat-server",
    usage: hashing ? HASH_CREDENTIALS_USAGE : SERVER_USAGE,
    help: SERVER_HELP,
    positionals: hashing ? 0 : 2,
  };
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
        "max-connections": { type: "string" },
        "max-pending-per-ip": { type: "string" },
        "max-failures-per-ip": { type: "string" },
        "max-registrations-per-ip": { type: "string" },
        "hash-credentials": { type: "boolean" },
        "duplicate-login": { type: "string" },
        quiet: { type: "boolean" },
        "tls-cert": { type: "string" },
        "tls-key": { type: "string" },
        "no-tls": { type: "boolean" },
        "proxy-protocol": { type: "boolean" },
        "data-dir": { type: "string" },
        "keep-board": { type: "boolean" },
        sync: { type: "string" },
        database: { type: "string" },
        "node-id": { type: "string" },
        help: { type: "boolean", short: "h" },
        version: { type: "boolean" },
      },
    }));
  if (isExit(parsed)) return parsed;
  const { values, positionals } = parsed;
  if (hashing) {
    const others = Object.keys(values).filter((name) =>
      name !== "hash-credentials" && name !== "credentials"
    );
    if (others.length > 0) {
      return usageExit(
        HASH_CREDENTIALS_USAGE,
        `--hash-credentials takes no other option than --credentials (got --${others[0]})`,
      );
    }
    return { hashCredentials: true, credentials: values.credentials ?? "credentials.txt" };
  }
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
  const counts = {
    "max-connections": parseCount(values["max-connections"], 1),
    "max-pending-per-ip": parseCount(values["max-pending-per-ip"] ?? "32", 0),
    "max-failures-per-ip": parseCount(values["max-failures-per-ip"] ?? "30", 0),
    "max-registrations-per-ip": parseCount(values["max-registrations-per-ip"] ?? "10", 0),
  };
  for (const [option, count] of Object.entries(counts)) {
    if (count === null) {
      return usageExit(
        SERVER_USAGE,
        `Invalid --${option}: ${values[option as keyof typeof counts]}`,
      );
    }
  }
  const sync = values.sync ?? "full";
  if (sync !== "full" && sync !== "normal") {
    return usageExit(SERVER_USAGE, `Invalid --sync: ${sync} (full or normal)`);
  }
  if (values["data-dir"] === "") return usageExit(SERVER_USAGE, "--data-dir needs a directory");
  if (values.database === "") return usageExit(SERVER_USAGE, "--database needs a URL");
  if (values["node-id"] !== undefined) {
    if (values.database === undefined) {
      return usageExit(SERVER_USAGE, "--node-id needs --database");
    }
    if (!/^[\w.:-]{1,64}$/.test(values["node-id"])) {
      return usageExit(SERVER_USAGE, `Invalid --node-id: ${values["node-id"]}`);
    }
  }
  const tlsCert = values["tls-cert"];
  const tlsKey = values["tls-key"];
  if ((tlsCert === undefined) !== (tlsKey === undefined)) {
    return usageExit(SERVER_USAGE, "--tls-cert and --tls-key go together: give both or neither");
  }
  if (values["no-tls"] && tlsCert !== undefined) {
    return usageExit(SERVER_USAGE, "--no-tls cannot be combined with --tls-cert and --tls-key");
  }
  if (values["proxy-protocol"] && !values["no-tls"]) {
    return usageExit(
      SERVER_USAGE,
      "--proxy-protocol needs --no-tls: the load balancer in front terminates TLS",
    );
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
    maxConnections: counts["max-connections"] ?? undefined,
    maxPendingPerIp: counts["max-pending-per-ip"]!,
    maxFailuresPerIp: counts["max-failures-per-ip"]!,
    maxRegistrationsPerIp: counts["max-registrations-per-ip"]!,
    quiet: values.quiet ?? false,
    tlsCert,
    tlsKey,
    noTls: values["no-tls"] ?? false,
    proxyProtocol: values["proxy-protocol"] ?? false,
    dataDir: values["data-dir"],
    keepBoard: values["keep-board"] ?? false,
    sync,
    ...(values.database !== undefined ? { database: values.database } : {}),
    ...(values["node-id"] !== undefined ? { nodeId: values["node-id"] } : {}),
  };
}

/** A whole number of at least `min` (up to 9 digits), undefined when absent, null when malformed. */
function parseCount(text: string | undefined, min: number): number | undefined | null {
  if (text === undefined) return undefined;
  if (!/^\d{1,9}$/.test(text) || Number(text) < min) return null;
  return Number(text);
}
