/**
 * chat-client: parses the command line, connects to the server, opens the UDP port for
 * peers, picks a terminal (line editing on a TTY, plain lines on a pipe) and runs the client.
 */
import {
  p2pExtension,
  parseClientArgs,
  PlainTerminal,
  runClient,
  TtyTerminal,
} from "./lib/client/mod.ts";
import type { TtyDevice } from "./lib/client/tty_terminal.ts";
import { UdpSocket } from "./lib/p2p/mod.ts";
import { isExit } from "./lib/shared/cli.ts";
import { tcpConnection } from "./lib/shared/transport.ts";

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
    console.error(`Download directory ${args.downloadDir} does not exist or is not a directory`);
    return 2;
  }
  let udp: UdpSocket;
  try {
    udp = new UdpSocket({ hostname: "0.0.0.0", port: args.udpPort });
  } catch (error) {
    console.error(`Cannot listen on UDP port ${args.udpPort}: ${(error as Error).message}`);
    return 1;
  }
  let conn: Deno.Conn;
  try {
    conn = await Deno.connect({ hostname: args.serverHost, port: args.serverPort });
  } catch (error) {
    console.error(
      `Unable to connect to server ${args.serverHost}:${args.serverPort}: ${
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
  const extension = p2pExtension({ socket: udp, terminal, downloadDir: args.downloadDir });
  return await runClient({
    conn: tcpConnection(conn),
    // A lost connection is dialled again at the same address (see --reconnect-for).
    connect: async () =>
      tcpConnection(await Deno.connect({ hostname: args.serverHost, port: args.serverPort })),
    reconnect: { forMs: args.reconnectForMs },
    terminal,
    udpPort: udp.localAddress.port,
    extension,
  });
}

if (import.meta.main) Deno.exit(await main());
