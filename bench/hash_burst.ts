/**
 * Benchmark for issue 9, "bounded work for hashing": what a burst of wrong passwords does to a
 * server whose passwords are stored as real scrypt hashes (DEFAULT_HASH_COST), and to a user who
 * is already logged in and chatting meanwhile.
 *
 *     deno run --allow-net --allow-read --allow-write --allow-run --allow-env bench/hash_burst.ts \
 *       [--burst 128] [--rounds 3] [--pool-concurrency N] [--pool-queue N]
 *
 * Each round starts a fresh server in a child process (this file run with `--child`): a real
 * ChatServer over plain TCP on 127.0.0.1, port 0, its files (credentials.txt with scrypt hashes
 * made here by hashPassword) in a temporary directory. The child prints its port, then its own
 * RSS (Deno.memoryUsage().rss) every 20 ms on stdout: Deno refuses to read /proc/<pid>/status
 * without --allow-all, so the server reports its memory itself. Then this process:
 *
 * - logs a bystander in (clear-text password, so its login costs no hash) and times 50 `whoelse`
 *   round trips while the server is idle;
 * - opens B connections (default 128) that each send `hello` and `user`, then, all at once, a
 *   wrong `pass`; meanwhile the bystander keeps sending `whoelse`, one at a time, timing each;
 * - records the replies by code, how long the burst took (first `pass` sent → last reply), the
 *   child's RSS just before, its peak during the burst and its RSS 1 s after. The samples come
 *   from the server's own event loop: when that loop stalls, fewer arrive (the count is printed)
 *   and the peak may be missed, so the growth is then a lower bound.
 *
 * It prints median [min–max] over the rounds in one table, with the date, the Deno version and
 * navigator.hardwareConcurrency. `--pool-concurrency` and `--pool-queue` set the server's hash
 * pool (ServerConfig hashConcurrency / hashQueue) to compare; `--pool-concurrency 64 --pool-queue
 * 1000` is close to no bound at all. The per-address limits are lifted so that the pool, not the
 * throttle, is measured (every connection comes from 127.0.0.1). Bounded by counts and by
 * deadlines; stops by itself; only talks to 127.0.0.1; kills its child and removes its temporary
 * directory. No timing is asserted.
 */

import { type Reply, ServerLink } from "../lib/client/server_link.ts";
import { ChatServer } from "../lib/server/chat_server.ts";
import { DEFAULT_HASH_COST, hashPassword } from "../lib/server/credentials.ts";
import { DiskFiles } from "../lib/server/files.ts";
import { serveTcp } from "../lib/server/tcp_server.ts";
import { systemClock } from "../lib/shared/clock.ts";
import { readLines } from "../lib/shared/lines.ts";
import type { Logger } from "../lib/shared/logger.ts";
import { tcpConnection } from "../lib/shared/transport.ts";

const HOST = "127.0.0.1";
const SCRIPT = new URL(import.meta.url).pathname;
/** How often the child reports its RSS. */
const SAMPLE_MS = 20;
/** The child exits by itself after this long, even if this process never told it to. */
const CHILD_FAILSAFE_MS = 180_000;
/** Longest a round's burst may take before the replies still missing count as "no reply". */
const BURST_DEADLINE_MS = 90_000;
/** Longest a connection, a login or one bystander request may take outside the burst. */
const STEP_DEADLINE_MS = 20_000;
/** Idle `whoelse` round trips timed before the burst. */
const IDLE_REQUESTS = 50;
/** The server is left alone this long before the burst, so "before" is a settled RSS. */
const SETTLE_MS = 300;
/** RSS "after" is read this long after the last reply. */
const AFTER_MS = 1_000;

/**
 * Wrong attempts per burst account. An account locks at its `maxFailures`-th (5th) failure in a
 * row, and a locked account is refused without hashing; failures only count once a hash has
 * finished, so a truly simultaneous burst against one account would be hashed in full anyway,
 * but any attempt arriving after the 5th reply would not be. Spreading the burst over
 * ceil(B / 4) accounts, 4 attempts each, keeps every account below the lockout: every attempt
 * is either hashed (bad-password) or refused by the pool (busy), which is what is measured.
 */
const ATTEMPTS_PER_ACCOUNT = 4;
const MAX_FAILURES = 5;
const BYSTANDER = "bystander";
const BYSTANDER_PASSWORD = "bystander-pw";
const BURST_PASSWORD = "right-pw";
const WRONG_PASSWORD = "wrong-pw";

/** What the parent tells the child to run. */
interface ChildOptions {
  dir: string;
  hashConcurrency?: number;
  hashQueue?: number;
  maxPendingLogins: number;
}

/** What the child prints first. */
interface ChildHello {
  port: number;
  concurrency: number;
  queue: number;
}

// ---------------------------------------------------------------------------------------------
// The child: a server that reports its RSS.

/** A logger that keeps quiet but counts warnings (the child reports nothing else on stdout). */
class CountingLogger implements Logger {
  warnings = 0;
  info(): void {}
  warn(message: string): void {
    if (this.warnings++ < 5) console.error(`server warning: ${message}`);
  }
}

async function runChild(options: ChildOptions): Promise<void> {
  const failsafe = setTimeout(() => Deno.exit(2), CHILD_FAILSAFE_MS);
  const controller = new AbortController();
  const { dir } = options;
  const server = new ChatServer({
    maxFailures: MAX_FAILURES,
    blockDurationMs: 60_000,
    inactivityMs: 0,
    allowRegister: false,
    duplicateLogin: "deny",
    credentialsPath: `${dir}/credentials.txt`,
    userLogPath: `${dir}/userlog.txt`,
    messageLogPath: `${dir}/messagelog.txt`,
    files: new DiskFiles(),
    clock: systemClock,
    logger: new CountingLogger(),
    hashCost: DEFAULT_HASH_COST,
    // Every connection comes from 127.0.0.1: lift the per-address limits (0 = no limit) so that
    // the hash pool is what refuses, if anything does.
    maxFailuresPerIp: 0,
    maxPendingPerIp: 0,
    maxPendingLogins: options.maxPendingLogins,
    // And the command rate limit, so the bystander is never paced.
    commandBurst: 1e9,
    commandsPerSecond: 1e9,
    ...(options.hashConcurrency !== undefined ? { hashConcurrency: options.hashConcurrency } : {}),
    ...(options.hashQueue !== undefined ? { hashQueue: options.hashQueue } : {}),
  });
  const listening = await serveTcp(server, { hostname: HOST, port: 0, signal: controller.signal });
  const pool = server.login.accounts.pool;
  const hello: ChildHello = {
    port: listening.port,
    concurrency: pool.concurrency,
    queue: pool.queueLimit,
  };
  console.log(JSON.stringify(hello));
  const sampler = setInterval(
    () => console.log(JSON.stringify({ rss: Deno.memoryUsage().rss })),
    SAMPLE_MS,
  );
  // Runs until the parent closes stdin (or goes away).
  for await (const _ of Deno.stdin.readable) {
    // Nothing is sent; only the end matters.
  }
  clearInterval(sampler);
  clearTimeout(failsafe);
  controller.abort();
  Deno.exit(0);
}

// ---------------------------------------------------------------------------------------------
// The parent: load and figures.

/** Resolves like `promise`, or rejects after `ms`. */
function deadline<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} took over ${ms / 1000} s`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function connect(port: number): Promise<ServerLink> {
  const conn = await Deno.connect({ hostname: HOST, port });
  const link = new ServerLink(tcpConnection(conn), { onEvent: () => {} });
  await link.hello();
  return link;
}

function expectOk(reply: Reply, what: string): void {
  if (!reply.ok) throw new Error(`${what} failed: ${reply.code} ${reply.lines.join(" / ")}`);
}

function quantile(values: number[], q: number): number {
  const sorted = Float64Array.from(values).sort();
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
}

/** One round's figures. */
interface RoundResult {
  pool: ChildHello;
  rssBefore: number;
  rssGrowth: number;
  rssAfter: number;
  idleP50: number;
  worst: number;
  p50: number;
  requests: number;
  burstMs: number;
  /** Replies to the burst by code ("ok", a refusal code, "lost" or "no reply"). */
  codes: Map<string, number>;
  samples: number;
}

interface Settings {
  burst: number;
  rounds: number;
  hashConcurrency?: number;
  hashQueue?: number;
}

function burstAccounts(burst: number): number {
  return Math.ceil(burst / ATTEMPTS_PER_ACCOUNT);
}

/** The round under way, for the failsafe to clean up after. */
let active: { dir: string; child?: Deno.ChildProcess } | undefined;

async function runRound(settings: Settings, storedHash: string): Promise<RoundResult> {
  const dir = await Deno.makeTempDir({ prefix: "toom_hash_burst_" });
  active = { dir };
  const accounts = burstAccounts(settings.burst);
  const lines = [`${BYSTANDER} ${BYSTANDER_PASSWORD}`];
  // One hash for every account: checking it costs a full scrypt all the same.
  for (let i = 0; i < accounts; i++) lines.push(`burst${i} ${storedHash}`);
  await Deno.writeTextFile(`${dir}/credentials.txt`, lines.join("\n") + "\n");
  const childOptions: ChildOptions = {
    dir,
    maxPendingLogins: Math.max(512, 2 * settings.burst),
    ...(settings.hashConcurrency !== undefined
      ? { hashConcurrency: settings.hashConcurrency }
      : {}),
    ...(settings.hashQueue !== undefined ? { hashQueue: settings.hashQueue } : {}),
  };
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--quiet",
      `--allow-net=${HOST}`,
      `--allow-read=${dir}`,
      `--allow-write=${dir}`,
      SCRIPT,
      "--child",
      JSON.stringify(childOptions),
    ],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  active.child = child;
  const links: ServerLink[] = [];
  const samples: Array<{ at: number; rss: number }> = [];
  let reading: Promise<void> | undefined;
  try {
    const output = readLines(child.stdout);
    const first = await deadline(output.next(), STEP_DEADLINE_MS, "Starting the server");
    if (first.done) throw new Error("The server child exited before it printed its port");
    const pool = JSON.parse(first.value) as ChildHello;
    // Read every sample as it comes (the child would block on a full pipe otherwise).
    reading = (async () => {
      for await (const line of output) {
        const message = JSON.parse(line) as { rss?: number };
        if (message.rss !== undefined) samples.push({ at: performance.now(), rss: message.rss });
      }
    })();

    const bystander = await deadline(connect(pool.port), STEP_DEADLINE_MS, "Bystander connect");
    links.push(bystander);
    expectOk(await bystander.request({ t: "user", name: BYSTANDER }), "bystander user");
    expectOk(
      await bystander.request({ t: "pass", password: BYSTANDER_PASSWORD, udpPort: 0 }),
      "bystander pass",
    );
    const whoelse = async (latencies: number[]) => {
      const sent = performance.now();
      const reply = await deadline(
        bystander.request({ t: "cmd", line: "whoelse" }),
        BURST_DEADLINE_MS,
        "A bystander request",
      );
      latencies.push(performance.now() - sent);
      expectOk(reply, "whoelse");
    };
    const idle: number[] = [];
    for (let i = 0; i < IDLE_REQUESTS; i++) await whoelse(idle);

    // Every burst connection says hello and names its account before any password is sent.
    const attackers = await deadline(
      Promise.all(Array.from({ length: settings.burst }, async (_, i) => {
        const link = await connect(pool.port);
        links.push(link);
        expectOk(await link.request({ t: "user", name: `burst${i % accounts}` }), "burst user");
        return link;
      })),
      STEP_DEADLINE_MS,
      "Opening the burst connections",
    );
    await sleep(SETTLE_MS);
    const before = samples.at(-1)?.rss;
    if (before === undefined) throw new Error("No RSS sample from the server");

    // The burst, with the bystander busy throughout.
    const latencies: number[] = [];
    let burstOver = false;
    const started = performance.now();
    // Caught at once (and rethrown below), so a failure cannot go unhandled meanwhile.
    const chatting = (async () => {
      while (!burstOver) await whoelse(latencies);
    })().then(() => undefined, (error: unknown) => error);
    const codes = attackers.map(() => "no reply");
    const replies = attackers.map((link, i) =>
      link.request({ t: "pass", password: WRONG_PASSWORD, udpPort: 0 }).then(
        (reply) => codes[i] = reply.ok ? "ok" : reply.code ?? "failed",
        () => codes[i] = "lost",
      )
    );
    // Past the deadline the replies still missing stay "no reply".
    await deadline(Promise.all(replies), BURST_DEADLINE_MS, "The burst").catch(() => {});
    const ended = performance.now();
    burstOver = true;
    const failed = await chatting;
    if (failed !== undefined) throw failed;
    await sleep(2 * SAMPLE_MS + 20);
    const during = samples.filter((sample) => sample.at >= started);
    const peak = Math.max(before, ...during.map((sample) => sample.rss));
    await sleep(AFTER_MS);
    const after = samples.at(-1)!.rss;

    const counted = new Map<string, number>();
    for (const code of codes) counted.set(code, (counted.get(code) ?? 0) + 1);
    return {
      pool,
      rssBefore: before,
      rssGrowth: peak - before,
      rssAfter: after - before,
      idleP50: quantile(idle, 0.5),
      worst: Math.max(...latencies),
      p50: quantile(latencies, 0.5),
      requests: latencies.length,
      burstMs: ended - started,
      codes: counted,
      samples: during.length,
    };
  } finally {
    for (const link of links) link.close();
    await child.stdin.close().catch(() => {});
    const exited = await deadline(child.status, 5_000, "Server exit").catch(() => undefined);
    if (!exited) {
      try {
        child.kill("SIGKILL");
      } catch {
        // It has exited meanwhile.
      }
      await child.status;
    }
    await reading?.catch(() => {});
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    active = undefined;
  }
}

function parseSettings(args: string[]): Settings {
  const settings: Settings = { burst: 128, rounds: 3 };
  for (let i = 0; i < args.length; i++) {
    const flag = args[i]!;
    const value = Number(args[++i]);
    if (!Number.isInteger(value) || value < 0) {
      throw new Error(`${flag} needs a whole number, not ${args[i]}`);
    }
    switch (flag) {
      case "--burst":
        settings.burst = Math.min(Math.max(1, value), 4096);
        break;
      case "--rounds":
        settings.rounds = Math.min(Math.max(1, value), 20);
        break;
      case "--pool-concurrency":
        settings.hashConcurrency = value;
        break;
      case "--pool-queue":
        settings.hashQueue = value;
        break;
      default:
        throw new Error(
          `Unknown option ${flag} (known: --burst, --rounds, --pool-concurrency, --pool-queue)`,
        );
    }
  }
  return settings;
}

const MIB = 1024 * 1024;

/** "median [min–max]" of `values`, each shown with `digits` decimals. */
function spread(values: number[], digits: number): string {
  const sorted = [...values].sort((a, b) => a - b);
  const median = sorted.length % 2
    ? sorted[(sorted.length - 1) / 2]!
    : (sorted[sorted.length / 2 - 1]! + sorted[sorted.length / 2]!) / 2;
  const show = (value: number) => value.toFixed(digits);
  return `${show(median)} [${show(sorted[0]!)}–${show(sorted.at(-1)!)}]`;
}

function printTable(settings: Settings, results: RoundResult[]): void {
  const pool = results[0]!.pool;
  const accounts = burstAccounts(settings.burst);
  const given = settings.hashConcurrency !== undefined || settings.hashQueue !== undefined;
  const count = (result: RoundResult, ...codes: string[]) =>
    codes.reduce((sum, code) => sum + (result.codes.get(code) ?? 0), 0);
  const cpus = navigator.hardwareConcurrency;
  console.log(
    `TOOM hash burst benchmark, ${new Date().toISOString()}, Deno ${Deno.version.deno}, ` +
      `${cpus} CPU${cpus === 1 ? "" : "s"} (navigator.hardwareConcurrency)`,
  );
  const { N, r, p } = DEFAULT_HASH_COST;
  console.log(
    `  burst: ${settings.burst} wrong passwords at once over ${accounts} scrypt accounts ` +
      `(N=${N}, r=${r}, p=${p}), ≤${ATTEMPTS_PER_ACCOUNT} each (lockout at ${MAX_FAILURES})`,
  );
  console.log(
    `  hash pool: concurrency ${pool.concurrency}, queue ${pool.queue} ` +
      `(${given ? "--pool-concurrency/--pool-queue" : "server defaults"})`,
  );
  console.log(
    "  per-address limits off (maxFailuresPerIp 0, maxPendingPerIp 0): the pool is measured, " +
      "not the throttle",
  );
  console.log(
    `  ${results.length} round${results.length === 1 ? "" : "s"}, a fresh server process each; ` +
      `median [min–max]`,
  );
  const rows: Array<[string, string]> = [
    ["server RSS before burst, MiB", spread(results.map((x) => x.rssBefore / MIB), 0)],
    ["server RSS growth, peak − before, MiB", spread(results.map((x) => x.rssGrowth / MIB), 0)],
    ["server RSS 1 s after − before, MiB", spread(results.map((x) => x.rssAfter / MIB), 0)],
    ["burst duration, ms", spread(results.map((x) => x.burstMs), 0)],
    ["bystander worst latency, ms", spread(results.map((x) => x.worst), 1)],
    ["bystander p50 latency, ms", spread(results.map((x) => x.p50), 2)],
    ["bystander p50 latency idle, ms", spread(results.map((x) => x.idleP50), 2)],
    ["bystander requests during burst", spread(results.map((x) => x.requests), 0)],
    [`replies busy (of ${settings.burst})`, spread(results.map((x) => count(x, "busy")), 0)],
    [
      "replies bad-password/locked/blocked",
      spread(results.map((x) => count(x, "bad-password", "locked", "blocked")), 0),
    ],
    ["replies throttled", spread(results.map((x) => count(x, "throttled")), 0)],
  ];
  const known = new Set(["busy", "bad-password", "locked", "blocked", "throttled"]);
  const others = results.map((x) =>
    [...x.codes].filter(([code]) => !known.has(code)).reduce((sum, [, n]) => sum + n, 0)
  );
  if (others.some((n) => n > 0)) {
    rows.push(["replies other (ok/failed/lost/no reply)", spread(others, 0)]);
  }
  const width = Math.max(...rows.map(([label]) => label.length));
  for (const [label, value] of rows) console.log(`  ${label.padEnd(width)}  ${value}`);
  console.log(
    `  RSS sampled by the server itself every ${SAMPLE_MS} ms ` +
      `(${spread(results.map((x) => x.samples), 0)} samples per burst; fewer than burst ` +
      `ms / ${SAMPLE_MS} means its event loop stalled and the peak is a lower bound)`,
  );
  console.log("  bystander: one whoelse at a time, timed from this process");
}

async function main(): Promise<number> {
  const settings = parseSettings(Deno.args);
  const failsafeMs = 60_000 + settings.rounds * 150_000;
  const failsafe = setTimeout(() => {
    console.error(`Benchmark did not finish within ${failsafeMs / 1000} s; giving up`);
    try {
      active?.child?.kill("SIGKILL");
    } catch {
      // Already gone.
    }
    if (active) Deno.removeSync(active.dir, { recursive: true });
    Deno.exit(1);
  }, failsafeMs);
  try {
    const storedHash = await hashPassword(BURST_PASSWORD, DEFAULT_HASH_COST);
    const results: RoundResult[] = [];
    for (let round = 0; round < settings.rounds; round++) {
      results.push(await runRound(settings, storedHash));
    }
    printTable(settings, results);
    return 0;
  } finally {
    clearTimeout(failsafe);
  }
}

if (import.meta.main) {
  if (Deno.args[0] === "--child") {
    await runChild(JSON.parse(Deno.args[1] ?? "{}") as ChildOptions);
  } else {
    Deno.exit(await main());
  }
}
