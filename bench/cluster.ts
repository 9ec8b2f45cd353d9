/**
 * Benchmark of cluster mode (issue 12): two ChatServer nodes joined through a throwaway
 * PostgreSQL (testing/postgres.ts) against one node alone, each on 127.0.0.1 port 0 in plain TCP,
 * with their files on disk in temporary directories and the rate limit lifted (as bench/server.ts
 * does), so that the cluster, not the limiter, is measured.
 *
 *     deno run --allow-net --allow-read --allow-write --allow-run --allow-env \
 *       --allow-sys=hostname bench/cluster.ts [--clients 40] [--messages 500] \
 *       [--round-trips 300] [--warmup 30]
 *
 * The load generator runs in this process, beside the nodes (simpler than a child process, and
 * both setups pay the same for it); it speaks the real protocol through lib/client/server_link.ts.
 * For each setup (two nodes, one database; one node alone, a database of its own on the same
 * PostgreSQL) it logs `--clients` users in, split evenly across the nodes, and measures:
 *
 * - broadcast fan-out: one sender broadcasts `--messages` messages (up to 32 outstanding);
 *   deliveries/s until every other client has every one, and the sender's reply latency;
 * - direct-message round trips between a client on node 1 and one on node 2 (alone: two clients
 *   of the one node): A sends B a message, B answers it, A receives the answer; `--warmup`
 *   unmeasured, then `--round-trips` one at a time.
 *
 * It prints one table. Bounded by counts; stops by itself (a failsafe for the whole run); only
 * talks to 127.0.0.1; stops PostgreSQL and removes every temporary directory. No timing is
 * asserted.
 */

import { benchServerConfig } from "./server_config.ts";
import { parseArgs } from "node:util";
import { type ClusterNode, openCluster } from "../lib/server/cluster/cluster.ts";
import { type Reply, ServerLink } from "../lib/client/server_link.ts";
import type { EventFrame } from "../lib/shared/protocol.ts";
import { tcpConnection } from "../lib/shared/transport.ts";
import { systemClock } from "../lib/shared/clock.ts";
import type { Logger } from "../lib/shared/logger.ts";
import { ChatServer, type Listening, serveTcp } from "../lib/server/mod.ts";
import { type PostgresServer, startPostgres } from "../testing/postgres.ts";

const FAILSAFE_MS = 180_000;
const WINDOW = 32;
const HOST = "127.0.0.1";
const PASSWORD_PREFIX = "pw";

const HELP = `Usage: bench/cluster.ts [options]

Cross-node broadcast fan-out and direct-message round trips: two cluster nodes on a throwaway
PostgreSQL against one node alone. Prints one table.

Options:
  --clients N       clients logged in, split evenly across the nodes (default 40)
  --messages M      broadcasts sent by one client (default 500)
  --round-trips R   measured direct-message round trips (default 300)
  --warmup W        unmeasured round trips before them (default 30)
  --help            this text`;

interface BenchOptions {
  clients: number;
  messages: number;
  roundTrips: number;
  warmup: number;
}

function parseOptions(args: string[]): BenchOptions | undefined {
  const { values } = parseArgs({
    args,
    options: {
      clients: { type: "string", default: "40" },
      messages: { type: "string", default: "500" },
      "round-trips": { type: "string", default: "300" },
      warmup: { type: "string", default: "30" },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) return undefined;
  const count = (name: string, text: string, min: number) => {
    const value = Number(text);
    if (!Number.isInteger(value) || value < min) {
      throw new Error(`--${name} must be a whole number of at least ${min}, not ${text}`);
    }
    return value;
  };
  return {
    clients: count("clients", values.clients, 2),
    messages: count("messages", values.messages, 1),
    roundTrips: count("round-trips", values["round-trips"], 1),
    warmup: count("warmup", values.warmup, 0),
  };
}

/** A logger that keeps only warnings (dropped sessions and the like), to report them. */
class WarningLogger implements Logger {
  readonly warnings: string[] = [];
  info(): void {}
  warn(message: string): void {
    if (this.warnings.length < 20) this.warnings.push(message);
  }
}

/** One node: its cluster membership, its listener and how to stop it. */
interface BenchNode {
  readonly port: number;
  close(): Promise<void>;
}

/** Joins node `id` to the cluster at `url` and serves it on 127.0.0.1, port 0, plain TCP. */
async function startNode(
  url: string,
  id: string,
  options: { dir: string; accounts: number; logger: Logger },
): Promise<BenchNode> {
  const { dir, accounts, logger } = options;
  await Deno.mkdir(dir, { recursive: true });
  const credentials = Array.from(
    { length: accounts },
    (_, i) => `user${i} ${PASSWORD_PREFIX}${i}\n`,
  ).join("");
  await Deno.writeTextFile(`${dir}/credentials.txt`, credentials);
  const cluster: ClusterNode = await openCluster(url, { node: id, clock: systemClock, logger });
  const controller = new AbortController();
  let listening: Listening;
  try {
    const server = new ChatServer(benchServerConfig(dir, logger, { cluster }));
    listening = await serveTcp(server, { hostname: HOST, port: 0, signal: controller.signal });
  } catch (error) {
    await cluster.close();
    throw error;
  }
  return {
    port: listening.port,
    async close() {
      controller.abort();
      try {
        await listening.finished;
      } finally {
        await cluster.close();
      }
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Clients.

interface Client {
  link: ServerLink;
  name: string;
  onEvent?: (event: EventFrame) => void;
}

function expectOk(reply: Reply, what: string): Reply {
  if (!reply.ok) throw new Error(`${what} failed: ${reply.code} ${reply.lines.join(" / ")}`);
  return reply;
}

async function login(port: number, index: number): Promise<Client> {
  const conn = await Deno.connect({ hostname: HOST, port });
  const client: Client = { link: undefined!, name: `user${index}` };
  client.link = new ServerLink(tcpConnection(conn), {
    onEvent: (event) => client.onEvent?.(event),
  });
  try {
    await client.link.hello();
    expectOk(await client.link.request({ t: "user", name: client.name }), "user");
    expectOk(
      await client.link.request({ t: "pass", password: `${PASSWORD_PREFIX}${index}`, udpPort: 0 }),
      "pass",
    );
  } catch (error) {
    client.link.close();
    throw error;
  }
  return client;
}

async function logout(client: Client): Promise<void> {
  try {
    await client.link.request({ t: "cmd", line: "OUT" });
  } catch {
    // The server may close first; either way the session is over.
  }
  client.link.close();
}

function percentiles(latencies: number[]): { p50: number; p99: number; max: number } {
  const sorted = Float64Array.from(latencies).sort();
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
  return { p50: at(0.5), p99: at(0.99), max: sorted[sorted.length - 1] ?? 0 };
}

interface Row {
  label: string;
  count: number;
  elapsedMs: number;
  unit: string;
  p50: number;
  p99: number;
  max: number;
}

/** One sender broadcasts `messages` (up to WINDOW outstanding); ends when all have arrived. */
async function broadcastPhase(clients: Client[], messages: number, setup: string): Promise<Row> {
  const [sender, ...recipients] = clients;
  let waiting = recipients.length;
  const allDelivered = Promise.withResolvers<void>();
  for (const recipient of recipients) {
    let got = 0;
    recipient.onEvent = (event) => {
      if (event.kind !== "broadcast") return;
      if (++got === messages && --waiting === 0) allDelivered.resolve();
    };
  }
  const latencies: number[] = [];
  const started = performance.now();
  let next = 0;
  const lane = async () => {
    while (next < messages) {
      const i = next++;
      const sent = performance.now();
      const reply = await sender!.link.request({ t: "cmd", line: `broadcast fan-out ${i}` });
      latencies.push(performance.now() - sent);
      expectOk(reply, "broadcast");
    }
  };
  await Promise.all(Array.from({ length: Math.min(WINDOW, messages) }, lane));
  await allDelivered.promise;
  const elapsedMs = performance.now() - started;
  for (const recipient of recipients) delete recipient.onEvent;
  return {
    label: `${setup}: broadcast 1 → ${recipients.length} × ${messages}`,
    count: recipients.length * messages,
    elapsedMs,
    unit: "deliveries/s",
    ...percentiles(latencies),
  };
}

/** A sends B a message, B answers, A receives it: `warmup` unmeasured, then `count` timed. */
async function roundTripPhase(
  a: Client,
  b: Client,
  counts: { warmup: number; count: number },
  setup: string,
): Promise<Row> {
  b.onEvent = (event) => {
    if (event.kind !== "message" || event.data.from !== a.name) return;
    b.link.request({ t: "cmd", line: `message ${a.name} answer` }).then(
      (reply) => expectOk(reply, "message"),
    ).catch((error) => answered?.reject(error));
  };
  let answered: PromiseWithResolvers<void> | undefined;
  a.onEvent = (event) => {
    if (event.kind === "message" && event.data.from === b.name) answered?.resolve();
  };
  const once = async (i: number) => {
    answered = Promise.withResolvers<void>();
    expectOk(await a.link.request({ t: "cmd", line: `message ${b.name} ping ${i}` }), "message");
    await answered.promise;
  };
  for (let i = 0; i < counts.warmup; i++) await once(i);
  const latencies: number[] = [];
  const started = performance.now();
  for (let i = 0; i < counts.count; i++) {
    const sent = performance.now();
    await once(i);
    latencies.push(performance.now() - sent);
  }
  const elapsedMs = performance.now() - started;
  delete a.onEvent;
  delete b.onEvent;
  return {
    label: `${setup}: message round trip A → B → A`,
    count: counts.count,
    elapsedMs,
    unit: "round trips/s",
    ...percentiles(latencies),
  };
}

/**
 * Starts `nodes` nodes on a fresh database, logs the clients in (client i on node i mod nodes),
 * runs both phases and stops everything it started.
 */
async function runSetup(
  pg: PostgresServer,
  nodes: number,
  options: BenchOptions & { dir: string; logger: Logger },
): Promise<Row[]> {
  const url = await pg.createDatabase();
  const setup = nodes === 1 ? "1 node alone" : `${nodes} nodes`;
  const started: BenchNode[] = [];
  const clients: Client[] = [];
  try {
    for (let n = 0; n < nodes; n++) {
      started.push(
        await startNode(url, `bench-${nodes}-${n + 1}`, {
          dir: `${options.dir}/${nodes}-node-${n + 1}`,
          accounts: options.clients,
          logger: options.logger,
        }),
      );
    }
    for (let i = 0; i < options.clients; i++) {
      clients.push(await login(started[i % nodes]!.port, i));
    }
    const rows = [await broadcastPhase(clients, options.messages, setup)];
    // Client 0 is on node 1 and client 1 on node 2 (alone: both on the one node).
    rows.push(
      await roundTripPhase(clients[0]!, clients[1]!, {
        warmup: options.warmup,
        count: options.roundTrips,
      }, setup),
    );
    return rows;
  } finally {
    await Promise.all(clients.map(logout));
    for (const node of started.reverse()) await node.close();
  }
}

function printTable(rows: Row[], options: BenchOptions): void {
  const cpus = navigator.hardwareConcurrency;
  console.log(
    `TOOM cluster benchmark, ${new Date().toISOString()}: ${cpus} CPU${cpus === 1 ? "" : "s"}, ` +
      `${Deno.build.os}/${Deno.build.arch}, Deno ${Deno.version.deno}; nodes and load generator ` +
      `in this process, PostgreSQL throwaway on 127.0.0.1; ${options.clients} clients split ` +
      "evenly across the nodes",
  );
  console.log(
    `  ${"setup: phase".padEnd(44)} ${"count".padStart(6)} ${"time".padStart(8)}  ${
      "rate".padStart(22)
    } ${"p50 ms".padStart(7)} ${"p99 ms".padStart(7)} ${"max ms".padStart(7)}`,
  );
  for (const row of rows) {
    const seconds = row.elapsedMs / 1000;
    const rate = `${(row.count / seconds).toFixed(0)} ${row.unit}`;
    console.log(
      `  ${row.label.padEnd(44)} ${String(row.count).padStart(6)} ${
        (seconds.toFixed(2) + " s").padStart(8)
      }  ${rate.padStart(22)} ${row.p50.toFixed(2).padStart(7)} ${row.p99.toFixed(2).padStart(7)} ${
        row.max.toFixed(2).padStart(7)
      }`,
    );
  }
  console.log(
    `  broadcast latency = the sender's reply (window ${WINDOW}); rate = deliveries until every ` +
      "recipient has every message.",
  );
  console.log(
    `  round trip = A's send to A's receipt of B's answer, one at a time, after ${options.warmup} ` +
      "unmeasured; 2 nodes: A on node 1, B on node 2.",
  );
}

async function main(): Promise<number> {
  let options: BenchOptions | undefined;
  try {
    options = parseOptions(Deno.args);
  } catch (error) {
    console.error((error as Error).message);
    return 2;
  }
  if (!options) {
    console.log(HELP);
    return 0;
  }
  const dir = await Deno.makeTempDir({ prefix: "toom_cluster_bench_" });
  const failsafe = setTimeout(() => {
    console.error(`Benchmark did not finish within ${FAILSAFE_MS / 1000} s; giving up`);
    try {
      Deno.removeSync(dir, { recursive: true });
    } catch {
      // Nothing more to do.
    }
    // Exiting runs the unload handler of testing/postgres.ts, which stops PostgreSQL.
    Deno.exit(1);
  }, FAILSAFE_MS);
  const logger = new WarningLogger();
  let pg: PostgresServer | undefined;
  try {
    pg = await startPostgres();
    const rows = [
      ...await runSetup(pg, 2, { ...options, dir, logger }),
      ...await runSetup(pg, 1, { ...options, dir, logger }),
    ];
    printTable(rows, options);
    if (logger.warnings.length > 0) {
      console.log(`  Server warnings (first ${logger.warnings.length}):`);
      for (const warning of logger.warnings) console.log(`    ${warning}`);
    }
    return 0;
  } finally {
    try {
      await pg?.stop();
    } finally {
      clearTimeout(failsafe);
      await Deno.remove(dir, { recursive: true });
    }
  }
}

if (import.meta.main) Deno.exit(await main());
