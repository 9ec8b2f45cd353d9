/**
 * chat-server: parses the command line, wires the server core to TCP and the files in the
 * current directory, and turns the outcome into an exit status.
 */
import { ChatServer, DiskFiles, parseServerArgs, serveTcp } from "./lib/server/mod.ts";
import { isExit } from "./lib/shared/cli.ts";
import { systemClock } from "./lib/shared/clock.ts";
import { displaySafe } from "./lib/shared/display.ts";
import type { Logger } from "./lib/shared/logger.ts";

async function main(): Promise<number> {
  const args = parseServerArgs(Deno.args);
  if (isExit(args)) {
    if (args.stdout) console.log(args.stdout.trimEnd());
    if (args.stderr) console.error(args.stderr.trimEnd());
    return args.exit;
  }
  // What the server logs quotes users (names, messages, file names): make it safe to show.
  const logger: Logger = {
    info: args.quiet ? () => {} : (message) => console.log(displaySafe(message)),
    warn: (message) => console.error(displaySafe(message)),
  };
  for (const name of ["read", "write"] as const) {
    if (Deno.permissions.querySync({ name, path: "." }).state !== "granted") {
      console.error(
        `chat-server needs --allow-${name}: it reads ${args.credentials} and writes ` +
          "userlog.txt and messagelog.txt in its current directory",
      );
      return 1;
    }
  }
  const files = new DiskFiles();
  if (await files.read(args.credentials) === undefined) {
    logger.warn(`${args.credentials} not found: no accounts until it exists`);
  }
  const server = new ChatServer({
    maxFailures: args.maxFailures,
    blockDurationMs: args.blockDurationSeconds * 1000,
    inactivityMs: args.timeoutSeconds * 1000,
    allowRegister: args.allowRegister,
    duplicateLogin: args.duplicateLogin,
    credentialsPath: args.credentials,
    userLogPath: "userlog.txt",
    messageLogPath: "messagelog.txt",
    files,
    clock: systemClock,
    logger,
  });
  const controller = new AbortController();
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(signal, () => controller.abort());
  }
  let listening;
  try {
    listening = await serveTcp(server, {
      hostname: args.host,
      port: args.port,
      signal: controller.signal,
    });
  } catch (error) {
    console.error(`Cannot listen on ${args.host}:${args.port}: ${(error as Error).message}`);
    return 1;
  }
  // The port comes first so that whoever started the server on port 0 can read it easily.
  console.log(
    `TOOM server listening on port ${listening.port} (${args.host}:${listening.port})`,
  );
  await listening.finished;
  console.log("Server stopped");
  return 0;
}

if (import.meta.main) Deno.exit(await main());
