/**
 * The server process bench/load.ts measures: chat-server as server.ts builds it (a ChatServer over
 * DiskFiles and toom.db in the current directory, served by serveTcp, stopped by SIGTERM/SIGINT),
 * with the bench-only settings that a load test needs and the command line cannot give:
 *
 * - the per-connection frame budget lifted (commandBurst / commandsPerSecond 1e9), so the server,
 *   not its rate limiter, is measured (flood protection off, as ngircd's `MaxPenaltyTime = 0`);
 * - the per-address limits off (maxPendingPerIp and maxFailuresPerIp 0): every client comes from
 *   127.0.0.1, and 32 connections waiting to log in per address would refuse a batch of 200;
 * - maxPendingLogins and maxConnections high enough for the largest run.
 *
 *     deno run --config DIR/deno.json --v8-flags=--expose-gc --allow-net=127.0.0.1 \
 *       --allow-read --allow-write --allow-env --allow-sys bench/load_server.ts \
 *       --toom-dir DIR [--tls] [--max-connections N]
 *
 * It loads the server code from `DIR/lib/server/mod.ts` (a checkout to measure, e.g. a pristine
 * copy of an older commit), so the same entry runs against any tree with that module. Like
 * chat-server it prints `TOOM server listening on port N` first. It answers lines on stdin:
 * `rss` with `rss <bytes> <heap used bytes>` (after a full garbage collection when the process was
 * started with --expose-gc, so the figure is what the clients hold, not garbage not yet
 * collected) and `cpu` with `cpu <microseconds>` (user + system CPU time of the whole process, all
 * threads). It prints `Server stopped` when the server has stopped.
 */
import process from "node:process";

interface Options {
  toomDir: string;
  tls: boolean;
  maxConnections: number;
}

function parseOptions(args: string[]): Options {
  const options: Options = { toomDir: "", tls: false, maxConnections: 20_000 };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--toom-dir") options.toomDir = args[++i] ?? "";
    else if (arg === "--tls") options.tls = true;
    else if (arg === "--max-connections") options.maxConnections = Number(args[++i]);
    else throw new Error(`load_server: unknown argument ${arg}`);
  }
  if (!options.toomDir) throw new Error("load_server: --toom-dir DIR is required");
  return options;
}

/** Answers `rss` and `cpu` lines on stdin until stdin closes. */
async function answerRequests(): Promise<void> {
  const decoder = new TextDecoder();
  const encoder = new TextEncoder();
  const buffer = new Uint8Array(256);
  let pending = "";
  const gc = (globalThis as { gc?: () => void }).gc;
  for (;;) {
    const n = await Deno.stdin.read(buffer);
    if (n === null) return;
    pending += decoder.decode(buffer.subarray(0, n));
    let newline: number;
    while ((newline = pending.indexOf("\n")) >= 0) {
      const request = pending.slice(0, newline).trim();
      pending = pending.slice(newline + 1);
      let answer: string;
      if (request === "rss") {
        if (gc) {
          gc();
          gc();
        }
        const usage = Deno.memoryUsage();
        answer = `rss ${usage.rss} ${usage.heapUsed}`;
      } else if (request === "cpu") {
        const { user, system } = process.cpuUsage();
        answer = `cpu ${user + system}`;
      } else {
        answer = `unknown ${request}`;
      }
      await Deno.stdout.write(encoder.encode(answer + "\n"));
    }
  }
}

async function main(): Promise<number> {
  const options = parseOptions(Deno.args);
  const lib = await import(new URL(`file://${options.toomDir}/lib/server/mod.ts`).href);
  const logger = {
    info: () => {},
    warn: (message: string) => console.error(message),
  };
  let tls: { cert: string; key: string } | undefined;
  if (options.tls) {
    const identity = await lib.loadOrCreateCertificate({ names: ["127.0.0.1"] });
    tls = { cert: identity.cert, key: identity.key };
  }
  const clock = { now: () => Date.now() };
  // Lasting state in toom.db, as chat-server keeps it (a tree from before the store has none).
  const sqlite = await import(new URL(`file://${options.toomDir}/lib/server/store/sqlite.ts`).href)
    .catch(() => undefined);
  const storage = sqlite?.openSqliteStorage(sqlite.DATABASE_FILE, { clock, logger });
  const server = new lib.ChatServer({
    maxFailures: 5,
    blockDurationMs: 10_000,
    inactivityMs: 0,
    allowRegister: false,
    duplicateLogin: "deny",
    credentialsPath: "credentials.txt",
    userLogPath: "userlog.txt",
    messageLogPath: "messagelog.txt",
    files: new lib.DiskFiles(),
    clock,
    logger,
    maxConnections: options.maxConnections,
    maxPendingLogins: options.maxConnections,
    maxPendingPerIp: 0,
    maxFailuresPerIp: 0,
    maxRegistrationsPerIp: 0,
    commandBurst: 1e9,
    commandsPerSecond: 1e9,
    ...(storage ? { storage } : {}),
  });
  const controller = new AbortController();
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(signal, () => controller.abort());
  }
  const listening = await lib.serveTcp(server, {
    hostname: "127.0.0.1",
    port: 0,
    signal: controller.signal,
    ...(tls ? { tls } : {}),
  });
  console.log(`TOOM server listening on port ${listening.port} (127.0.0.1:${listening.port})`);
  void answerRequests().catch(() => {});
  await listening.finished;
  console.log("Server stopped");
  return 0;
}

if (import.meta.main) Deno.exit(await main());
