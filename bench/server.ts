/**
 * Benchmark of the chat server: a real ChatServer over TCP on 127.0.0.1 (port 0) with its files
 * on disk in a temporary directory, driven by a load generator in a child process
 * (bench/server_client.ts) that speaks the real protocol through lib/client/server_link.ts.
 *
 *     deno run --allow-net --allow-read --allow-write --allow-run --allow-env bench/server.ts \
 *       [--store sqlite|memory] [--keep-board] [--sync full|normal]
 *
 * The server keeps its lasting state as chat-server does: in toom.db in the temporary directory
 * (`--store memory`: nowhere, as before the durable store; `--keep-board` and `--sync` as
 * chat-server's options). It measures MSG throughput (1 and 20 clients, each pipelining up to 32
 * requests), broadcast fan-out (20 online, one broadcasts), direct messages to online users (10
 * senders) and to offline users (20 senders; each reply comes after the message is committed),
 * RDM of a 10,000-message board and login throughput with clear-text passwords, and prints one
 * table. It runs against older trees too (copy bench/server*.ts into one), so before and after
 * can be compared. The rate limit is lifted so that the server, not the
 * limiter, is measured. Server and client CPU time (process.cpuUsage, each process its own) are
 * read at the edges of every timed phase. Bounded by counts; stops by itself (120 s failsafe for
 * the whole run); only talks to 127.0.0.1; removes its temporary directory. No timing is asserted.
 */

import { benchServerConfig } from "./server_config.ts";
import { parseArgs } from "node:util";
import { readLines } from "../lib/shared/lines.ts";
import process from "node:process";
import { systemClock } from "../lib/shared/clock.ts";
import type { Logger } from "../lib/shared/logger.ts";
import { ChatServer, serveTcp } from "../lib/server/mod.ts";
import type { PhaseResult } from "./server_client.ts";

const FAILSAFE_MS = 120_000;
const ACCOUNTS = 120;
const PASSWORD_PREFIX = "pw";
const CLIENT_SCRIPT = new URL("./server_client.ts", import.meta.url).pathname;

/** What the child runs; sent to it over the control channel. */
const CONFIG = {
  msgSingle: 20_000,
  msgClients: 20,
  msgMany: 2_000,
  online: 20,
  broadcasts: 5_000,
  board: 10_000,
  rdmRuns: 100,
  logins: 4_000,
  workers: 20,
  dmSenders: 10,
  dmEach: 2_000,
  // 20 senders × 5 to each of 100 offline users: within every mailbox limit (100 per
  // recipient, 20 per sender).
  offlineSenders: 20,
  offlineRecipients: 100,
  offlineEach: 5,
};
const PHASES = ["msg1", "msgN", "broadcast", "dm", "offline", "rdm", "login"];

/** User + system CPU seconds this process has used (every thread, as getrusage counts). */
function cpuSeconds(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1e6;
}

interface Row extends PhaseResult {
  serverCpu?: number;
  clientCpu?: number;
}

/** A logger that keeps only warnings (dropped sessions and the like), to report them. */
class WarningLogger implements Logger {
  readonly warnings: string[] = [];
  info(): void {}
  warn(message: string): void {
    if (this.warnings.length < 20) this.warnings.push(message);
  }
}

/** The board, wherever the tree being measured keeps it (older trees: state.board). */
type Board = {
  reset(): Promise<void>;
  post(author: string, text: string): Promise<unknown>;
  size: number;
};

/**
 * Empties the board (unless it is kept: then it holds what the MSG phases posted) and posts
 * `count` messages straight into it (not over the network).
 */
async function seedBoard(server: ChatServer, count: number): Promise<number> {
  const state = server.state as unknown as { store?: { board: Board }; board?: Board };
  const board = (state.store?.board ?? state.board)!;
  await board.reset();
  const posts: Promise<unknown>[] = [];
  for (let i = 1; i <= count; i++) {
    posts.push(board.post(`user${i % ACCOUNTS}`, `seeded board message number ${i}`));
  }
  await Promise.all(posts);
  return board.size;
}

interface BenchOptions {
  store: "sqlite" | "memory";
  keepBoard: boolean;
  sync: "full" | "normal";
}

function parseOptions(args: string[]): BenchOptions {
  const { values } = parseArgs({
    args,
    options: {
      store: { type: "string", default: "sqlite" },
      "keep-board": { type: "boolean", default: false },
      sync: { type: "string", default: "full" },
    },
  });
  if (values.store !== "sqlite" && values.store !== "memory") {
    throw new Error(`--store sqlite|memory, not ${values.store}`);
  }
  if (values.sync !== "full" && values.sync !== "normal") {
    throw new Error(`--sync full|normal, not ${values.sync}`);
  }
  return { store: values.store, keepBoard: values["keep-board"], sync: values.sync };
}

/** The storage chat-server would use, in `dir`; undefined for memory (or a tree without one). */
async function openStorage(dir: string, options: BenchOptions): Promise<unknown> {
  if (options.store === "memory") return undefined;
  const sqlite = await import("../lib/server/store/sqlite.ts").catch(() => undefined);
  if (!sqlite) throw new Error("this tree has no lib/server/store/sqlite.ts: use --store memory");
  return sqlite.openSqliteStorage(`${dir}/${sqlite.DATABASE_FILE}`, {
    clock: systemClock,
    sync: options.sync,
  });
}

function fmt(value: number | undefined, digits: number): string {
  return value === undefined ? "n/a" : value.toFixed(digits);
}

function printTable(rows: Row[], cpus: number, options: BenchOptions): void {
  const store = options.store === "memory"
    ? "state in memory"
    : `toom.db, --sync ${options.sync}${options.keepBoard ? ", --keep-board" : ""}`;
  console.log(
    `TOOM server benchmark: server in this process (DiskFiles in a temp dir; ${store}), load ` +
      `generator in a child process, ${cpus} CPU${cpus === 1 ? "" : "s"}, 127.0.0.1`,
  );
  const header = `  ${"phase".padEnd(44)} ${"count".padStart(6)} ${"time".padStart(7)}  ${
    "rate".padStart(20)
  } ${"p50 ms".padStart(7)} ${"p99 ms".padStart(7)} ${"max ms".padStart(7)}  ${
    "srv CPU".padStart(7)
  } ${"cli CPU".padStart(7)}`;
  console.log(header);
  for (const row of rows) {
    const seconds = row.elapsedMs / 1000;
    const rate = `${(row.count / seconds).toFixed(row.unit === "RDM/s" ? 1 : 0)} ${row.unit}`;
    const cpu = (used: number | undefined) =>
      used === undefined ? "n/a" : `${Math.round((100 * used) / seconds)}%`;
    console.log(
      `  ${row.label.padEnd(44)} ${String(row.count).padStart(6)} ${
        (seconds.toFixed(2) + " s").padStart(7)
      }  ${rate.padStart(20)} ${fmt(row.p50, 2).padStart(7)} ${fmt(row.p99, 2).padStart(7)} ${
        fmt(row.max, 2).padStart(7)
      }  ${cpu(row.serverCpu).padStart(7)} ${cpu(row.clientCpu).padStart(7)}`,
    );
  }
  const rdm = rows.find((row) => row.phase === "rdm");
  if (rdm) {
    console.log(`  RDM: ${(rdm.elapsedMs / rdm.count).toFixed(1)} ms per RDM on average`);
  }
  for (const row of rows) if (row.note) console.log(`  ${row.label}: ${row.note}`);
  console.log(
    "  CPU = process CPU time / wall time of the phase (100% = one core; the server's includes " +
      "Deno's file I/O threads).",
  );
}

async function main(): Promise<number> {
  const options = parseOptions(Deno.args);
  const dir = await Deno.makeTempDir({ prefix: "toom_server_bench_" });
  let child: Deno.ChildProcess | undefined;
  const failsafe = setTimeout(() => {
    console.error(`Benchmark did not finish within ${FAILSAFE_MS / 1000} s; giving up`);
    try {
      child?.kill("SIGKILL");
    } catch {
      // Already gone.
    }
    try {
      Deno.removeSync(dir, { recursive: true });
    } catch {
      // Nothing more to do.
    }
    Deno.exit(1);
  }, FAILSAFE_MS);
  const logger = new WarningLogger();
  const controller = new AbortController();
  let listening: Awaited<ReturnType<typeof serveTcp>> | undefined;
  try {
    const credentials = Array.from(
      { length: ACCOUNTS },
      (_, i) => `user${i} ${PASSWORD_PREFIX}${i}\n`,
    ).join("");
    await Deno.writeTextFile(`${dir}/credentials.txt`, credentials);
    const storage = await openStorage(dir, options);
    const server = new ChatServer(
      benchServerConfig(
        dir,
        logger,
        storage ? { storage: storage as never, keepBoard: options.keepBoard } : {},
      ),
    );
    listening = await serveTcp(server, {
      hostname: "127.0.0.1",
      port: 0,
      signal: controller.signal,
    });

    child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-net=127.0.0.1",
        CLIENT_SCRIPT,
        String(listening.port),
        String(ACCOUNTS),
        PASSWORD_PREFIX,
      ],
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const writer = child.stdin.getWriter();
    const answer = (value: unknown) =>
      writer.write(new TextEncoder().encode(JSON.stringify(value) + "\n"));
    const nextLineIterator = readLines(child.stdout);
    const nextLine = async () => (await nextLineIterator.next()).value;

    const rows: Row[] = [];
    let startCpu = [0, 0];
    let done = false;
    while (!done) {
      const line = await nextLine();
      if (line === undefined) break;
      const message = JSON.parse(line) as {
        op: string;
        count?: number;
        cpu?: number;
        result?: PhaseResult;
      };
      switch (message.op) {
        case "config":
          await answer(CONFIG);
          break;
        case "start":
          startCpu = [cpuSeconds(), message.cpu ?? 0];
          await answer({});
          break;
        case "end": {
          const serverCpu = cpuSeconds() - startCpu[0]!;
          const clientCpu = (message.cpu ?? 0) - startCpu[1]!;
          const result = message.result!;
          if (PHASES.includes(result.phase)) rows.push({ ...result, serverCpu, clientCpu });
          await answer({});
          break;
        }
        case "seed":
          await answer({ size: await seedBoard(server, message.count ?? 0) });
          break;
        case "done":
          done = true;
          break;
        default:
          throw new Error(`Unexpected line from the load generator: ${line}`);
      }
    }
    await writer.close().catch(() => {});
    const status = await child.status;
    if (!done || !status.success) {
      console.error(`Load generator failed (exit ${status.code})`);
      return 1;
    }
    printTable(rows, navigator.hardwareConcurrency, options);
    if (logger.warnings.length > 0) {
      console.log(`  Server warnings (first ${logger.warnings.length}):`);
      for (const warning of logger.warnings) console.log(`    ${warning}`);
    }
    return 0;
  } catch (error) {
    try {
      child?.kill("SIGKILL");
    } catch {
      // It has already exited.
    }
    throw error;
  } finally {
    controller.abort();
    await listening?.finished;
    clearTimeout(failsafe);
    await Deno.remove(dir, { recursive: true });
  }
}

if (import.meta.main) Deno.exit(await main());
