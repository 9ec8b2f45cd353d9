/**
 * chat-client: parses the command line, connects to the server, opens the UDP port for
 * peers, picks a terminal (line editing on a TTY, plain lines on a pipe) and runs the client.
 */
import {
  FileKnownServers,
  knownServersPath,
  p2pExtension,
  parseClientArgs,
  PlainTerminal,
  runClient,
  serverDialer,
  SessionKnownServers,
  TtyTerminal,
} from "./lib/client/mod.ts";
import { wrapWords } from "./lib/client/text_width.ts";
import type { TtyDevice } from "./lib/client/tty_terminal.ts";
import { UdpSocket } from "./lib/p2p/mod.ts";
import { isExit } from "./lib/shared/cli.ts";
import { type Connection, TransportError } from "./lib/shared/transport.ts";
import { derFromPem } from "./lib/shared/fingerprint.ts";

const encoder = new TextEncoder();

function writeStdout(text: string): void {
  const bytes = encoder.encode(text);
  let written = 0;
  while (written < bytes.length) written += Deno.stdout.writeSync(bytes.subarray(written));
}

/** The process's own terminal, for TtyTerminal. */
function stdinTerminal(): TtyDevice {
  return {
    input: Deno.stdin.readable,
    write: writeStdout,
    size: () => {
      try {
        return Deno.consoleSize();
      } catch {
        return { columns: 80, rows: 24 };
      }
    },
    setRaw: (raw) => Deno.stdin.setRaw(raw),
    onSignal(signal, handler) {
      Deno.addSignalListener(signal, handler);
      return () => Deno.removeSignalListener(signal, handler);
    },
    suspend: () => Deno.kill(Deno.pid, "SIGTSTP"),
  };
}

/**
 * Prints a message on stderr; on a terminal, broken between words to its width (the terminal's
 * own wrapping would split words, fingerprints included).
 */
function warn(message: string): void {
  if (!Deno.stderr.isTerminal()) return console.error(message);
  let columns = 80;
  try {
    columns = Deno.consoleSize().columns;
  } catch {
    // Not measurable (stdout is not a terminal): a common width.
  }
  console.error(wrapWords(message, columns));
}

async function main(): Promise<number> {
  const args = parseClientArgs(Deno.args);
  if (isExit(args)) {
    if (args.stdout) console.log(args.stdout.trimEnd());
    if (args.stderr) console.error(args.stderr.trimEnd());
    return args.exit;
  }
  // Without file permissions the client still chats; only UPD then fails, saying why.
  const canRead = Deno.permissions.querySync({ name: "read", path: args.downloadDir }).state ===
    "granted";
  if (canRead && !(await Deno.stat(args.downloadDir).then((i) => i.isDirectory, () => false))) {
    warn(`Download directory ${args.downloadDir} does not exist or is not a directory`);
    return 2;
  }
  let udp: UdpSocket;
  try {
    udp = new UdpSocket({ hostname: "0.0.0.0", port: args.udpPort });
  } catch (error) {
    warn(`Cannot listen on UDP port ${args.udpPort}: ${(error as Error).message}`);
    return 1;
  }
  let ca: string | undefined;
  if (args.ca !== undefined) {
    try {
      ca = await Deno.readTextFile(args.ca);
    } catch (error) {
      warn(`Cannot read --ca ${args.ca}: ${(error as Error).message}`);
      udp.close();
      return 2;
    }
    if (!derFromPem(ca)) {
      warn(`--ca ${args.ca} holds no PEM certificate`);
      udp.close();
      return 2;
    }
  }
  // Pins live in a file when it can be had; otherwise (no HOME, no permission) for this run only.
  const pinFile = knownServersPath((name) => Deno.env.get(name));
  const knownServers = new SessionKnownServers(
    pinFile === undefined ? undefined : new FileKnownServers(pinFile),
    (message) => warn(message),
  );
  if (pinFile === undefined && !args.noTls) {
    warn(
      "Cannot find the configuration directory (neither XDG_CONFIG_HOME nor HOME is set or " +
        "readable): server certificates are remembered for this session only.",
    );
  }
  // Every connection, the first and each reconnection, is checked the same way.
  const connect = serverDialer({
    hostname: args.serverHost,
    port: args.serverPort,
    knownServers,
    ...(ca !== undefined ? { ca, caName: args.ca! } : {}),
    notify: (message) => warn(message),
    plain: args.noTls,
  });
  let conn: Connection;
  try {
    conn = await connect();
  } catch (error) {
    warn(
      error instanceof TransportError
        ? error.message
        : `Unable to connect to server ${args.serverHost}:${args.serverPort}: ${
          (error as Error).message
        }`,
    );
    udp.close();
    return 1;
  }
  const terminal = Deno.stdin.isTerminal()
    ? new TtyTerminal(stdinTerminal(), { colour: !Deno.env.get("NO_COLOR"), bell: !args.noBell })
    : new PlainTerminal(Deno.stdin.readable, writeStdout);
  if (terminal instanceof PlainTerminal) {
    Deno.addSignalListener("SIGINT", () => terminal.interrupt());
  } else {
    // Even a crash must not leave the terminal in raw mode with its cursor hidden.
    for (const event of ["error", "unhandledrejection", "unload"]) {
      globalThis.addEventListener(event, () => terminal.close());
    }
  }
  // The engine owns the UDP socket from here and closes it when the client ends.
  const extension = p2pExtension({
    socket: udp,
    terminal,
    downloadDir: args.downloadDir,
    maxFileBytes: args.maxFileBytes,
  });
  return await runClient({
    conn,
    // A lost connection is dialled again at the same address (see --reconnect-for).
    connect,
    reconnect: { forMs: args.reconnectForMs },
    terminal,
    udpPort: udp.localAddress.port,
    extension,
  });
}

if (import.meta.main) Deno.exit(await main());
