/**
 * Load benchmark of the chat server against ngircd (issue 10): many clients on 127.0.0.1, the
 * same shape for both servers, interleaved in one run, one table of medians and ranges.
 *
 *     deno run -A bench/load.ts [--rounds 3] [--no-tls] [--no-ngircd] [--toom-dir DIR] ...
 *
 * (`-A` because reading ngircd's /proc/<pid>/status and /proc/<pid>/task/<tid>/schedstat needs
 * it in Deno; `--help` lists every option.)
 *
 * Processes: the server under test is a real process of its own. TOOM is bench/load_server.ts
 * (chat-server's wiring, loaded from `--toom-dir`'s lib/server/mod.ts) in a temporary directory
 * with a generated credentials.txt of clear-text passwords (so logging in costs no scrypt), on
 * 127.0.0.1 port 0, plain (`TOOM`) or TLS with its self-signed certificate (`TOOM TLS`); its rate
 * limit and per-address limits are lifted by that bench-only entry. ngircd (when on PATH, Debian
 * package `ngircd`) runs with a generated config: 127.0.0.1 on a free port, `MaxPenaltyTime = 0`
 * (no flood penalties), no connection, per-address or channel limits, no DNS, ident or PAM. This
 * process is the load generator (bench/load_gen.ts): raw connections, small buffers, minimal
 * parsing. It shares the machine's cores with the server, which the output says.
 *
 * The shape, per round and server (servers interleaved, their order rotated every round):
 * 1. fan-out: 500 clients log in; `broadcast` (IRC: PRIVMSG #bench) of 100 messages by 1 sender,
 *    then of 1,000 by 10 senders (each sends its share in chunks of 50, at most 2 chunks
 *    unacknowledged); deliveries/s = messages × recipients / time from the first send until every
 *    recipient has every message; server CPU per delivery = the server's CPU time over the phase /
 *    deliveries.
 * 2. ramp: 200 warm-up clients log in and leave; then clients log in in batches of 200 (TOOM:
 *    hello + user + pass; IRC: NICK + USER + JOIN #bench), at most 8 of them connecting at once
 *    (ngircd listens with a backlog of 10, and a burst beyond it would wait for the kernel's SYN
 *    retries, seconds, in both servers' case alike); login rate over the first 1,000 counts
 *    until every login and every presence notification it causes (TOOM `logged in` events, IRC
 *    JOINs) has arrived; server RSS at each memory point once every notification has arrived (TOOM
 *    after a forced garbage collection), minus the RSS before the first client, per client; then
 *    2,000 sequential direct-message round trips between two clients with the others idle
 *    (A → B, B answers at once, A receives: one sample), after 100 unmeasured; then on to 10,000
 *    (or the first refused login, or the ramp's time budget): the most clients and the RSS there;
 *    then SIGTERM and the time until the process has exited. Only the first `--capacity-rounds`
 *    rounds (default 1) measure memory past the first point and ramp on (TOOM TLS: memory only);
 *    the others stop at the first point, since a login costs more the more users are online.
 *    TOOM clients send a heartbeat after 15 s without sending, as real clients do.
 * 3. stop: 2,000 clients log in, then SIGTERM: the time until the process has exited.
 *
 * Bounded: every wait has a timeout, the whole run a limit (`--time-limit`); only 127.0.0.1;
 * servers are killed and temporary directories removed in `finally`. Nothing is asserted.
 */
import {
  type Client,
  type Endpoint,
  IrcProtocol,
  LoadGenerator,
  type Protocol,
  ToomProtocol,
  within,
} from "./load_gen.ts";

const SERVER_SCRIPT = new URL("./load_server.ts", import.meta.url).pathname;
const DEFAULT_TOOM_DIR = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const WARMUP_CLIENTS = 200;
const DM_WARMUP = 100;
const FANOUT_CHUNK = 50;
const DM_SECONDS = 20;

// -----------------------------------------------------------------------------------------------
// Options

interface Options {
  toomDir: string;
  rounds: number;
  /** Clients that log in for the fan-out phases. */
  fanoutClients: number;
  /** Fan-out phases: messages in all, by how many senders. */
  fanouts: Array<{ messages: number; senders: number }>;
  /** Memory points of the ramp; the first is also where logins are timed and DMs measured. */
  memoryAt: number[];
  /** Where the ramp stops at most. */
  maxClients: number;
  /** Seconds the ramp past the last memory point may take before it stops where it is. */
  rampSeconds: number;
  /** Rounds (the first ones) that ramp past the last memory point. */
  capacityRounds: number;
  batch: number;
  dmTrips: number;
  /** Clients logged in for the clean-stop measurement. */
  stopAt: number;
  /** Seconds a clean stop may take before the server is killed. */
  stopSeconds: number;
  tls: boolean;
  ngircd: boolean;
  /** Seconds the whole run may take. */
  timeLimit: number;
}

const USAGE = `Usage: deno run -A bench/load.ts [options]
  --toom-dir DIR        checkout whose lib/server/ is measured [this repository]
  --rounds R            rounds, every server each round [3]
  --fanout-clients N    clients in the fan-out phases [500]
  --fanout M/S,...      fan-out phases: M messages in all by S senders [100/1,1000/10]
  --memory-at N,...     ramp points where memory is measured [1000,5000]; the first is also
                        where the login rate and the direct-message round trips are measured
  --max-clients N       the ramp goes on to N clients at most [10000]
  --ramp-seconds S      time budget of the ramp past the last memory point [120]
  --capacity-rounds K   rounds that measure memory past the first point and ramp on [1]
  --batch N             clients that log in at once [200]
  --dm-trips N          direct-message round trips [2000]
  --stop-at N           clients logged in for the clean-stop row [2000]
  --stop-seconds S      a clean stop that takes longer is killed [60]
  --no-tls              skip the TOOM TLS column
  --no-ngircd           skip ngircd
  --time-limit S        the whole run gives up after S seconds [1800]
`;

function parseOptions(args: string[]): Options | string {
  const options: Options = {
    toomDir: DEFAULT_TOOM_DIR,
    rounds: 3,
    fanoutClients: 500,
    fanouts: [{ messages: 100, senders: 1 }, { messages: 1000, senders: 10 }],
    memoryAt: [1000, 5000],
    maxClients: 10_000,
    rampSeconds: 120,
    capacityRounds: 1,
    batch: 200,
    dmTrips: 2000,
    stopAt: 2000,
    stopSeconds: 60,
    tls: true,
    ngircd: true,
    timeLimit: 1800,
  };
  const count = (text: string | undefined, name: string, min = 1): number => {
    const value = Number(text);
    if (!Number.isInteger(value) || value < min) {
      throw new Error(`${name} needs an integer ≥ ${min}`);
    }
    return value;
  };
  try {
    for (let i = 0; i < args.length; i++) {
      const arg = args[i]!;
      const value = () => args[++i];
      switch (arg) {
        case "--help":
        case "-h":
          return USAGE;
        case "--toom-dir":
          options.toomDir = Deno.realPathSync(value() ?? "");
          break;
        case "--rounds":
          options.rounds = count(value(), arg);
          break;
        case "--fanout-clients":
          options.fanoutClients = count(value(), arg, 2);
          break;
        case "--fanout":
          options.fanouts = (value() ?? "").split(",").map((part) => {
            const [messages, senders] = part.split("/");
            return { messages: count(messages, arg), senders: count(senders ?? "1", arg) };
          });
          break;
        case "--memory-at":
          options.memoryAt = (value() ?? "").split(",").map((part) => count(part, arg, 2))
            .sort((a, b) => a - b);
          break;
        case "--max-clients":
          options.maxClients = count(value(), arg, 2);
          break;
        case "--ramp-seconds":
          options.rampSeconds = count(value(), arg);
          break;
        case "--capacity-rounds":
          options.capacityRounds = count(value(), arg, 0);
          break;
        case "--batch":
          options.batch = count(value(), arg);
          break;
        case "--dm-trips":
          options.dmTrips = count(value(), arg);
          break;
        case "--stop-at":
          options.stopAt = count(value(), arg, 0);
          break;
        case "--stop-seconds":
          options.stopSeconds = count(value(), arg);
          break;
        case "--no-tls":
          options.tls = false;
          break;
        case "--no-ngircd":
          options.ngircd = false;
          break;
        case "--time-limit":
          options.timeLimit = count(value(), arg);
          break;
        default:
          return `Unknown option ${arg}\n${USAGE}`;
      }
    }
  } catch (error) {
    return `${(error as Error).message}\n${USAGE}`;
  }
  options.maxClients = Math.max(options.maxClients, ...options.memoryAt);
  for (const { senders } of options.fanouts) {
    if (senders >= options.fanoutClients) return `--fanout: more senders than clients\n${USAGE}`;
  }
  return options;
}

// -----------------------------------------------------------------------------------------------
// Server processes

/** Reads a child's output line by line. */
class LineReader {
  #lines: string[] = [];
  #waiter: (() => void) | undefined;
  #ended = false;

  constructor(stream: ReadableStream<Uint8Array>, onLine?: (line: string) => boolean) {
    void (async () => {
      const decoder = new TextDecoder();
      let pending = "";
      try {
        for await (const chunk of stream) {
          pending += decoder.decode(chunk, { stream: true });
          let newline: number;
          while ((newline = pending.indexOf("\n")) >= 0) {
            const line = pending.slice(0, newline);
            pending = pending.slice(newline + 1);
            if (!onLine?.(line)) this.#lines.push(line);
          }
          this.#wake();
        }
      } catch {
        // The child went away.
      }
      this.#ended = true;
      this.#wake();
    })();
  }

  #wake(): void {
    const waiter = this.#waiter;
    this.#waiter = undefined;
    waiter?.();
  }

  /** The next line, or undefined once the stream has ended; rejects after `ms`. */
  async next(ms: number, what: string): Promise<string | undefined> {
    const deadline = performance.now() + ms;
    while (this.#lines.length === 0 && !this.#ended) {
      const left = deadline - performance.now();
      if (left <= 0) throw new Error(`timed out after ${ms / 1000} s waiting for ${what}`);
      await within(new Promise<void>((resolve) => this.#waiter = resolve), left, what)
        .catch(() => {});
    }
    return this.#lines.shift();
  }
}

/** A server under test. */
interface Server {
  readonly endpoint: Endpoint;
  /** Resident memory, bytes (TOOM: after a forced garbage collection). */
  rss(): Promise<number>;
  /** CPU time used so far, microseconds (every thread). */
  cpu(): Promise<number>;
  /** SIGTERM, then the ms until the process exited; undefined if it was killed after `ms`. */
  stop(ms: number): Promise<number | undefined>;
  /** Kills the process (if running) and removes its directory; idempotent. */
  dispose(): Promise<void>;
  /** What the server wrote on stderr (the first lines) and how many lines in all. */
  readonly log: { lines: string[]; count: number };
}

const running = new Set<Server>();

/** Collects a child's output lines (the first 10 kept). */
function collect(log: { lines: string[]; count: number }) {
  return (line: string) => {
    if (line.trim() === "") return true;
    log.count++;
    if (log.lines.length < 10) log.lines.push(line);
    return true;
  };
}

class ServerProcess implements Server {
  endpoint: Endpoint = { port: 0 };
  readonly log = { lines: [] as string[], count: 0 };
  readonly child: Deno.ChildProcess;
  readonly dir: string;
  #exited = false;
  #disposed = false;

  constructor(child: Deno.ChildProcess, dir: string) {
    this.child = child;
    this.dir = dir;
    void child.status.then(() => this.#exited = true);
    running.add(this);
  }

  rss(): Promise<number> {
    throw new Error("not implemented");
  }

  cpu(): Promise<number> {
    throw new Error("not implemented");
  }

  async stop(ms: number): Promise<number | undefined> {
    const started = performance.now();
    try {
      this.child.kill("SIGTERM");
    } catch {
      // Already gone.
    }
    try {
      await within(this.child.status, ms, "the server to stop");
      return performance.now() - started;
    } catch {
      this.kill();
      await within(this.child.status, 10_000, "the killed server to exit").catch(() => {});
      return undefined;
    }
  }

  kill(): void {
    if (this.#exited) return;
    try {
      this.child.kill("SIGKILL");
    } catch {
      // Already gone.
    }
  }

  async dispose(): Promise<void> {
    if (this.#disposed) return;
    this.#disposed = true;
    this.kill();
    await within(this.child.status, 10_000, "the server to exit").catch(() => {});
    await Deno.remove(this.dir, { recursive: true }).catch(() => {});
    running.delete(this);
  }

  /** Synchronous last resort (the run's time limit). */
  disposeSync(): void {
    this.kill();
    try {
      Deno.removeSync(this.dir, { recursive: true });
    } catch {
      // Nothing more to do.
    }
  }
}

class ToomServer extends ServerProcess {
  readonly #stdout: LineReader;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;

  constructor(child: Deno.ChildProcess, dir: string) {
    super(child, dir);
    this.#stdout = new LineReader(child.stdout);
    new LineReader(child.stderr, collect(this.log));
    this.#writer = child.stdin.getWriter();
  }

  static async start(toomDir: string, tls: boolean, accounts: string, maxConnections: number) {
    const dir = await Deno.makeTempDir({ prefix: "toom_load_" });
    await Deno.writeTextFile(`${dir}/credentials.txt`, accounts, { mode: 0o600 });
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--config",
        `${toomDir}/deno.json`,
        "--v8-flags=--expose-gc",
        "--allow-net=127.0.0.1",
        "--allow-read",
        "--allow-write",
        "--allow-env",
        "--allow-sys",
        SERVER_SCRIPT,
        "--toom-dir",
        toomDir,
        "--max-connections",
        String(maxConnections),
        ...(tls ? ["--tls"] : []),
      ],
      cwd: dir,
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const server = new ToomServer(child, dir);
    try {
      const first = await server.#stdout.next(60_000, "the TOOM server to listen");
      const port = Number(/listening on port (\d+)/.exec(first ?? "")?.[1]);
      if (!port) {
        throw new Error(`TOOM server did not start: ${first ?? server.log.lines.join(" / ")}`);
      }
      server.endpoint = tls
        ? { port, tlsCert: await Deno.readTextFile(`${dir}/toom-cert.pem`) }
        : { port };
      return server;
    } catch (error) {
      await server.dispose();
      throw error;
    }
  }

  async #ask(request: string): Promise<string[]> {
    await this.#writer.write(new TextEncoder().encode(request + "\n"));
    const line = await this.#stdout.next(30_000, `the server's answer to ${request}`);
    const words = (line ?? "").split(" ");
    if (words[0] !== request) throw new Error(`Unexpected answer to ${request}: ${line}`);
    return words.slice(1);
  }

  override async rss(): Promise<number> {
    return Number((await this.#ask("rss"))[0]);
  }

  override async cpu(): Promise<number> {
    return Number((await this.#ask("cpu"))[0]);
  }

  override async stop(ms: number): Promise<number | undefined> {
    await this.#writer.close().catch(() => {});
    return super.stop(ms);
  }

  override async dispose(): Promise<void> {
    await this.#writer.close().catch(() => {});
    await super.dispose();
  }
}

class IrcServer extends ServerProcess {
  static async start(ngircd: string): Promise<IrcServer> {
    const dir = await Deno.makeTempDir({ prefix: "toom_load_ngircd_" });
    // A port that was free a moment ago (ngircd cannot be given port 0).
    const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (probe.addr as Deno.NetAddr).port;
    probe.close();
    await Deno.writeTextFile(`${dir}/ngircd.conf`, ngircdConfig(port, dir));
    // Its log goes to a file: a pipe that this busy process reads late would stall it.
    const child = new Deno.Command("/bin/sh", {
      args: [
        "-c",
        'exec "$0" --nodaemon --passive --config ngircd.conf > ngircd.log 2>&1',
        ngircd,
      ],
      cwd: dir,
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    const server = new IrcServer(child, dir);
    server.endpoint = { port };
    try {
      const deadline = performance.now() + 15_000;
      for (;;) {
        try {
          (await Deno.connect({ hostname: "127.0.0.1", port })).close();
          break;
        } catch (error) {
          if (performance.now() > deadline) throw error;
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
      }
      return server;
    } catch (error) {
      const log = await Deno.readTextFile(`${dir}/ngircd.log`).catch(() => "");
      await server.dispose();
      throw new Error(`ngircd did not start: ${error} ${log.slice(-500)}`);
    }
  }

  override async rss(): Promise<number> {
    const status = await Deno.readTextFile(`/proc/${this.child.pid}/status`);
    return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1]) * 1024;
  }

  override async cpu(): Promise<number> {
    let ns = 0;
    for await (const task of Deno.readDir(`/proc/${this.child.pid}/task`)) {
      const text = await Deno.readTextFile(`/proc/${this.child.pid}/task/${task.name}/schedstat`)
        .catch(() => "0");
      ns += Number(text.split(" ")[0]);
    }
    return ns / 1000;
  }
}

function ngircdConfig(port: number, dir: string): string {
  return `# Generated by bench/load.ts
[Global]
Name = bench.toom.local
Info = TOOM load benchmark
AdminInfo1 = bench
AdminInfo2 = bench
AdminEMail = bench@localhost
Listen = 127.0.0.1
Ports = ${port}
MotdPhrase = bench
PidFile = ${dir}/ngircd.pid

[Limits]
MaxConnections = 0
MaxConnectionsIP = 0
MaxJoins = 0
MaxNickLength = 16
MaxPenaltyTime = 0
PingTimeout = 3600
PongTimeout = 3600

[Options]
DNS = no
Ident = no
PAM = no
IncludeDir = ${dir}
`;
}

/** The path of `name` on PATH (and in the sbin directories a user's PATH may lack). */
function findProgram(name: string): string | undefined {
  const path = (Deno.env.get("PATH") ?? "").split(":").filter((dir) => dir !== "");
  for (const dir of [...path, "/usr/sbin", "/usr/local/sbin", "/sbin"]) {
    try {
      const info = Deno.statSync(`${dir}/${name}`);
      if (info.isFile && ((info.mode ?? 0) & 0o111) !== 0) return `${dir}/${name}`;
    } catch {
      // Not there.
    }
  }
  return undefined;
}

// -----------------------------------------------------------------------------------------------
// Targets and measurements

interface Target {
  name: "TOOM" | "ngircd" | "TOOM TLS";
  protocol: Protocol;
  /** Whether the ramp goes past the memory points and the clean stop is measured. */
  full: boolean;
  start(maxClients: number): Promise<Server>;
}

/** One measurement: a number, or "more than" one (a stop that had to be killed). */
interface Value {
  value: number;
  over?: boolean;
}

type Results = Map<string, Map<string, Value[]>>;

function record(results: Results, target: string, row: string, value: Value): void {
  let rows = results.get(target);
  if (!rows) results.set(target, rows = new Map());
  let values = rows.get(row);
  if (!values) rows.set(row, values = []);
  values.push(value);
}

const notes: string[] = [];

function note(text: string): void {
  if (!notes.includes(text)) notes.push(text);
  console.error(`  note: ${text}`);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Logs clients [from, to) in, batch by batch; stops at the first batch with a failure. */
async function logIn(
  gen: LoadGenerator,
  from: number,
  to: number,
  options: { batch: number; password: (i: number) => string; deadline?: number },
): Promise<{ ok: boolean; why?: string }> {
  for (let i = from; i < to; i += options.batch) {
    if (options.deadline !== undefined && performance.now() > options.deadline) {
      return { ok: false, why: "time budget spent" };
    }
    const end = Math.min(i + options.batch, to);
    const before = gen.loggedIn;
    try {
      await gen.loginBatch(i, end, options.password, 60_000);
    } catch (error) {
      return { ok: false, why: (error as Error).message };
    }
    expectPresence(gen, before, gen.loggedIn);
    const failed = gen.clients.slice(i, end).find((client) => !client.loggedIn);
    if (failed) return { ok: false, why: `${failed.name}: ${failed.failure}` };
  }
  return { ok: true };
}

/** Raises the presence lines expected by what logins from `before` to `after` users cause. */
function expectPresence(gen: LoadGenerator, before: number, after: number): void {
  let more = 0;
  for (let k = before; k < after; k++) more += gen.protocol.presencePerLogin(k);
  gen.presenceTarget = (Number.isFinite(gen.presenceTarget) ? gen.presenceTarget : 0) + more;
}

/** Waits until every presence line expected has arrived; returns when that was. */
async function drainPresence(gen: LoadGenerator, ms: number): Promise<number> {
  if (gen.presence < gen.presenceTarget) {
    await within(
      new Promise<void>((resolve) => gen.presenceResolve = resolve),
      ms,
      `presence notifications (${gen.presence} of ${gen.presenceTarget} arrived)`,
    );
    return gen.presenceDoneAt;
  }
  return performance.now();
}

/** Server RSS once things have settled. */
async function settledRss(server: Server): Promise<number> {
  await sleep(300);
  return server.rss();
}

/**
 * One fan-out phase: `messages` in all by the first `senders` clients, to every client logged
 * in. Returns deliveries/s and server CPU µs per delivery.
 */
async function fanout(
  gen: LoadGenerator,
  server: Server | undefined,
  messages: number,
  senders: number,
): Promise<{ rate: number; cpuPerDelivery: number; deliveries: number }> {
  const clients = gen.clients.filter((client) => client.loggedIn && client.open);
  const share = (i: number) => Math.floor(messages / senders) + (i < messages % senders ? 1 : 0);
  let deliveries = 0;
  gen.fanoutRemaining = 0;
  for (const [i, client] of clients.entries()) {
    client.fanout = 0;
    client.fanoutExpect = messages - (i < senders ? share(i) : 0);
    deliveries += client.fanoutExpect;
    if (client.fanoutExpect > 0) gen.fanoutRemaining++;
  }
  const done = new Promise<void>((resolve) => gen.fanoutResolve = resolve);
  const cpuBefore = await server?.cpu();
  const started = performance.now();
  const send = async (sender: Client, count: number) => {
    const perChunk = gen.protocol.acksPerChunk(FANOUT_CHUNK);
    const base = sender.acks;
    for (let chunk = 0, sent = 0; sent < count; chunk++) {
      if (chunk >= 2) {
        await within(
          sender.waitAcks(base + (chunk - 1) * perChunk),
          30_000,
          `acknowledgements of ${sender.name}'s fan-out messages`,
        );
      }
      const parts: Uint8Array[] = [];
      for (let k = 0; k < FANOUT_CHUNK && sent < count; k++, sent++) {
        parts.push(gen.protocol.broadcast(sender, `load test ${sender.index}-${sent} of ${count}`));
      }
      const sync = gen.protocol.sync(sender, `c${chunk}`);
      if (sync) parts.push(sync);
      await sender.send(concat(parts));
    }
  };
  await Promise.all(clients.slice(0, senders).map((sender, i) => send(sender, share(i))));
  await within(
    done,
    60_000 + deliveries / 10,
    `fan-out deliveries (${gen.fanoutRemaining} recipients still waiting)`,
  );
  const elapsed = (gen.fanoutDoneAt - started) / 1000;
  const cpuAfter = await server?.cpu();
  return {
    rate: deliveries / elapsed,
    cpuPerDelivery: cpuBefore === undefined ? NaN : (cpuAfter! - cpuBefore) / deliveries,
    deliveries,
  };
}

function concat(parts: Uint8Array[]): Uint8Array {
  const size = parts.reduce((sum, part) => sum + part.length, 0);
  const out = new Uint8Array(size);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/** `trips` sequential direct-message round trips A → B → A; the times in ms. */
async function directTrips(
  gen: LoadGenerator,
  a: Client,
  b: Client,
  trips: number,
  who: string,
) {
  const samples: number[] = [];
  const total = trips + DM_WARMUP;
  let sentAt = 0;
  const { promise, resolve } = Promise.withResolvers<void>();
  const started = performance.now();
  const next = () => {
    // At most DM_SECONDS: a server that holds every message back (Nagle) still finishes.
    if (samples.length >= total || performance.now() - started > DM_SECONDS * 1000) {
      return resolve();
    }
    sentAt = performance.now();
    void a.send(gen.protocol.direct(a, b.name, "ping"));
  };
  b.onDirect = () => void b.send(gen.protocol.direct(b, a.name, "pong"));
  a.onDirect = () => {
    samples.push(performance.now() - sentAt);
    next();
  };
  next();
  try {
    await within(promise, 30_000 + total * 20, `direct messages (${samples.length} of ${total})`);
  } finally {
    a.onDirect = b.onDirect = undefined;
  }
  const measured = samples.slice(Math.min(DM_WARMUP, samples.length >> 1));
  if (measured.length < trips) {
    note(
      `${who} direct messages: only ${measured.length} of ${trips} round trips in ${DM_SECONDS} s`,
    );
  }
  return measured;
}

function percentile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

function password(i: number): string {
  return `p${i}`;
}

function warmupPassword(i: number): string {
  return `q${i}`;
}

/** Stops a server (untimed, killed if slow) and closes its clients. */
async function finish(server: Server, ...gens: LoadGenerator[]): Promise<void> {
  try {
    await server.stop(10_000);
  } finally {
    for (const gen of gens) gen.closeAll();
    await server.dispose();
  }
}

/** Reports what went wrong on the server's side and the clients'. */
function reportProblems(target: Target, what: string, server: Server, gen: LoadGenerator): void {
  if (gen.errorCount > 0) {
    note(`${target.name} ${what}: ${gen.errorCount} client error(s), e.g. ${gen.errors[0]}`);
  }
  if (server.log.count > 0 && target.name !== "ngircd") {
    note(
      `${target.name} ${what}: the server wrote ${server.log.count} line(s) on stderr, e.g. ${
        server.log.lines[0]
      }`,
    );
  }
}

async function fanoutScenario(target: Target, options: Options, results: Results): Promise<void> {
  const server = await target.start(options.fanoutClients + 100);
  const gen = new LoadGenerator(target.protocol, server.endpoint);
  try {
    const login = await logIn(gen, 0, options.fanoutClients, { batch: options.batch, password });
    if (!login.ok) throw new Error(`logging in ${options.fanoutClients} clients: ${login.why}`);
    await drainPresence(gen, 120_000);
    // Unmeasured: both processes compile their hot paths.
    await fanout(gen, undefined, 50, 1);
    for (const [i, { messages, senders }] of options.fanouts.entries()) {
      const result = await fanout(gen, server, messages, senders);
      record(results, target.name, `fanout${i}`, { value: result.rate });
      record(results, target.name, `fanoutCpu${i}`, { value: result.cpuPerDelivery });
    }
  } finally {
    reportProblems(target, "fan-out", server, gen);
    await finish(server, gen);
  }
}

async function rampScenario(
  target: Target,
  options: Options,
  results: Results,
  capacity: boolean,
): Promise<void> {
  // Rounds past the capacity rounds stop at the first memory point: with everyone in one channel
  // (or notified of everyone) a login costs more the more users are online.
  const points = capacity ? options.memoryAt : options.memoryAt.slice(0, 1);
  const rampOn = capacity && target.full;
  const top = rampOn ? options.maxClients : points.at(-1)!;
  const server = await target.start(top + WARMUP_CLIENTS + 100);
  const warm = new LoadGenerator(target.protocol, server.endpoint, "w");
  const gen = new LoadGenerator(target.protocol, server.endpoint);
  try {
    // Unmeasured: logins and direct messages warm both processes up; then they all leave.
    const warmLogin = await logIn(warm, 0, WARMUP_CLIENTS, {
      batch: options.batch,
      password: warmupPassword,
    });
    if (!warmLogin.ok) throw new Error(`warm-up logins: ${warmLogin.why}`);
    await drainPresence(warm, 60_000);
    await directTrips(warm, warm.clients[0]!, warm.clients[1]!, 50, `${target.name} warm-up`);
    warm.closeAll();
    await sleep(1000);
    const rss0 = await settledRss(server);
    record(results, target.name, "rss0", { value: rss0 });

    let online = 0;
    const started = performance.now();
    for (const [i, point] of points.entries()) {
      const login = await logIn(gen, online, point, { batch: options.batch, password });
      if (!login.ok) throw new Error(`logging in ${point} clients: ${login.why}`);
      const drained = await drainPresence(gen, 300_000);
      online = point;
      if (i === 0) {
        const last = Math.max(drained, gen.loginsDoneAt);
        record(results, target.name, "loginRate", { value: point / ((last - started) / 1000) });
      }
      const rss = await settledRss(server);
      record(results, target.name, `mem${point}`, { value: (rss - rss0) / point });
      if (i === 0 && options.dmTrips > 0) {
        const trips =
          (await directTrips(gen, gen.clients[0]!, gen.clients[1]!, options.dmTrips, target.name))
            .sort((a, b) => a - b);
        record(results, target.name, "dm50", { value: percentile(trips, 0.5) });
        record(results, target.name, "dm99", { value: percentile(trips, 0.99) });
      }
    }
    if (!rampOn) return;
    const rampStarted = performance.now();
    const login = await logIn(gen, online, top, {
      batch: options.batch,
      password,
      deadline: rampStarted + options.rampSeconds * 1000,
    });
    if (!login.ok) note(`${target.name} ramp stopped at ${gen.loggedIn} clients: ${login.why}`);
    // Let what the last logins caused arrive (as much as arrives in the time left).
    await drainPresence(gen, 60_000).catch((error) => note(`${target.name}: ${error.message}`));
    const reached = gen.loggedIn;
    record(results, target.name, "reached", { value: reached });
    record(results, target.name, "rssMax", { value: await settledRss(server) });
    const stopped = await server.stop(options.stopSeconds * 1000);
    record(results, target.name, "stopMax", {
      value: (stopped ?? options.stopSeconds * 1000) / 1000,
      ...(stopped === undefined ? { over: true } : {}),
    });
    record(results, target.name, "stopMaxClients", { value: reached });
  } finally {
    reportProblems(target, "ramp", server, gen);
    await finish(server, warm, gen);
  }
}

async function stopScenario(target: Target, options: Options, results: Results): Promise<void> {
  const server = await target.start(options.stopAt + 100);
  const gen = new LoadGenerator(target.protocol, server.endpoint);
  try {
    const login = await logIn(gen, 0, options.stopAt, { batch: options.batch, password });
    if (!login.ok) throw new Error(`logging in ${options.stopAt} clients: ${login.why}`);
    await drainPresence(gen, 300_000);
    await sleep(300);
    const stopped = await server.stop(options.stopSeconds * 1000);
    record(results, target.name, "stop", {
      value: (stopped ?? options.stopSeconds * 1000) / 1000,
      ...(stopped === undefined ? { over: true } : {}),
    });
  } finally {
    reportProblems(target, "stop", server, gen);
    await finish(server, gen);
  }
}

// -----------------------------------------------------------------------------------------------
// Output

interface RowSpec {
  key: string;
  label: string;
  format: (value: number) => string;
}

function thousands(value: number): string {
  return Math.round(value).toLocaleString("en-US");
}

function rowSpecs(options: Options): RowSpec[] {
  const kib = (bytes: number) => (bytes / 1024).toFixed(1);
  const mib = (bytes: number) => (bytes / 1048576).toFixed(1);
  const ms = (value: number) => value.toFixed(3);
  const s = (value: number) => value.toFixed(2);
  const first = options.memoryAt[0]!;
  const rows: RowSpec[] = [
    {
      key: "loginRate",
      label: `login rate, 0 → ${thousands(first)} clients, logins/s`,
      format: thousands,
    },
    { key: "rss0", label: "server RSS before any client, MiB", format: mib },
    ...options.memoryAt.map((point) => ({
      key: `mem${point}`,
      label: `memory per idle client at ${thousands(point)}, KiB`,
      format: kib,
    })),
    {
      key: "reached",
      label: `most clients logged in (ramp to ${thousands(options.maxClients)})`,
      format: thousands,
    },
    { key: "rssMax", label: "  server RSS there, MiB", format: mib },
  ];
  for (const [i, { messages, senders }] of options.fanouts.entries()) {
    rows.push({
      key: `fanout${i}`,
      label: `fan-out ${options.fanoutClients} × ${thousands(messages)} msgs, ${senders} sender${
        senders === 1 ? "" : "s"
      }: deliveries/s`,
      format: thousands,
    });
    rows.push({ key: `fanoutCpu${i}`, label: "  server CPU per delivery, µs", format: s });
  }
  rows.push(
    {
      key: "dm50",
      label: `direct-message round trip at ${thousands(first)}, p50 ms`,
      format: ms,
    },
    { key: "dm99", label: "  p99 ms", format: ms },
    {
      key: "stop",
      label: `clean stop (SIGTERM), ${thousands(options.stopAt)} logged in, s`,
      format: s,
    },
    { key: "stopMax", label: "clean stop with the most clients logged in, s", format: s },
  );
  return rows;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

function cell(values: Value[] | undefined, format: (value: number) => string): string {
  if (!values || values.length === 0) return "–";
  const numbers = values.map((v) => v.value).filter((v) => Number.isFinite(v));
  if (numbers.length === 0) return "–";
  const over = values.some((v) => v.over) ? ">" : "";
  const mid = `${over}${format(median(numbers))}`;
  if (numbers.length === 1) return mid;
  return `${mid} [${format(Math.min(...numbers))}–${format(Math.max(...numbers))}]`;
}

function ratio(toom: Value[] | undefined, irc: Value[] | undefined): string {
  if (!toom?.length || !irc?.length) return "–";
  const a = median(toom.map((v) => v.value));
  const b = median(irc.map((v) => v.value));
  if (!Number.isFinite(a) || !Number.isFinite(b) || b === 0) return "–";
  const r = a / b;
  const over = toom.some((v) => v.over) ? ">" : "";
  return `${over}${r >= 10 ? r.toFixed(0) : r >= 1 ? r.toFixed(1) : r.toFixed(2)}×`;
}

async function machine(): Promise<string> {
  const cpuinfo = await Deno.readTextFile("/proc/cpuinfo").catch(() => "");
  const model = /model name\s*:\s*(.*)/.exec(cpuinfo)?.[1]?.trim() ?? "unknown CPU";
  const meminfo = await Deno.readTextFile("/proc/meminfo").catch(() => "");
  const memKb = Number(/MemTotal:\s+(\d+)/.exec(meminfo)?.[1] ?? 0);
  return `${navigator.hardwareConcurrency} cores (${model}), ${
    (memKb / 1048576).toFixed(0)
  } GiB RAM, ${Deno.build.os} ${Deno.osRelease()}`;
}

async function ngircdVersion(path: string): Promise<string> {
  try {
    const out = await new Deno.Command(path, { args: ["--version"], stdout: "piped" }).output();
    return new TextDecoder().decode(out.stdout).split("\n")[0]!.split("-")[0]!;
  } catch {
    return "ngircd";
  }
}

function printTable(
  options: Options,
  targets: Target[],
  results: Results,
  header: string[],
  partial: boolean,
): void {
  const rows = rowSpecs(options);
  const names = ["TOOM", "ngircd", "TOOM TLS"].filter((name) =>
    targets.some((target) => target.name === name)
  );
  const columns = [...names];
  if (names.includes("ngircd")) columns.splice(2, 0, "TOOM/ngircd");
  const table: string[][] = [["", ...columns]];
  for (const row of rows) {
    const line = [row.label];
    for (const column of columns) {
      if (column === "TOOM/ngircd") {
        line.push(ratio(results.get("TOOM")?.get(row.key), results.get("ngircd")?.get(row.key)));
      } else line.push(cell(results.get(column)?.get(row.key), row.format));
    }
    if (line.slice(1).every((text) => text === "–")) continue;
    table.push(line);
  }
  const widths = table[0]!.map((_, i) => Math.max(...table.map((line) => line[i]!.length)));
  console.log(partial ? "\n(partial results: the run was cut short)" : "");
  for (const line of header) console.log(line);
  console.log("");
  for (const line of table) {
    console.log(
      line.map((text, i) => i === 0 ? text.padEnd(widths[i]!) : text.padStart(widths[i]!))
        .join("  ").trimEnd(),
    );
  }
  const stopMax = (name: string) => {
    const clients = results.get(name)?.get("stopMaxClients")?.map((v) => v.value);
    return clients?.length ? `${name} ${clients.map(thousands).join("/")}` : undefined;
  };
  const stopped = names.map(stopMax).filter((text) => text !== undefined);
  if (stopped.length > 0) {
    console.log(`\nclients logged in at the last clean stop: ${stopped.join(", ")}`);
  }
  console.log(`
median [min–max] over the rounds; TOOM/ngircd = ratio of the medians. Memory per idle client =
(RSS at N − RSS before the first client) / N, with every presence notification delivered; TOOM's
RSS after a forced GC, ngircd's VmRSS. Server CPU = the server process's own CPU time (TOOM:
process.cpuUsage(), every thread; ngircd: /proc schedstat). Login rate and memory count TOOM's
"logged in" events and IRC's JOINs (each login notifies everyone online). TOOM logins use
clear-text passwords (no scrypt); TOOM's rate limit and per-address limits are off (bench-only
server entry bench/load_server.ts), as are ngircd's penalties (MaxPenaltyTime = 0). Logins come in
batches of ${options.batch}, at most 8 connecting at once (ngircd's listen backlog is 10). DM round
trip = A sends to B, B answers on receipt, A receives. The load generator is this process, on the
same cores as the server: at high rates it competes with the server for CPU, so the rates are
lower bounds for both servers; other processes on the machine are not controlled.`);
  if (notes.length > 0) {
    console.log("\nnotes:");
    for (const text of notes) console.log(`  - ${text}`);
  }
}

// -----------------------------------------------------------------------------------------------
// Main

async function main(): Promise<number> {
  const parsed = parseOptions(Deno.args);
  if (typeof parsed === "string") {
    const help = parsed === USAGE;
    (help ? console.log : console.error)(parsed.trimEnd());
    return help ? 0 : 2;
  }
  const options = parsed;
  try {
    Deno.statSync(`${options.toomDir}/lib/server/mod.ts`);
  } catch {
    console.error(`No TOOM server in ${options.toomDir} (lib/server/mod.ts is missing)`);
    return 2;
  }
  const accounts = (() => {
    const lines: string[] = [];
    for (let i = 0; i < options.maxClients; i++) lines.push(`u${i} ${password(i)}`);
    for (let i = 0; i < WARMUP_CLIENTS; i++) lines.push(`w${i} ${warmupPassword(i)}`);
    return lines.join("\n") + "\n";
  })();
  const targets: Target[] = [{
    name: "TOOM",
    protocol: new ToomProtocol(),
    full: true,
    start: (max) => ToomServer.start(options.toomDir, false, accounts, max),
  }];
  const ngircd = options.ngircd ? findProgram("ngircd") : undefined;
  let ngircdName = "";
  if (ngircd) {
    ngircdName = await ngircdVersion(ngircd);
    targets.push({
      name: "ngircd",
      protocol: new IrcProtocol(),
      full: true,
      start: () => IrcServer.start(ngircd),
    });
  } else if (options.ngircd) {
    console.error(
      "ngircd is not on PATH: no comparison (Debian: apt-get install ngircd; or --no-ngircd)",
    );
  }
  if (options.tls) {
    targets.push({
      name: "TOOM TLS",
      protocol: new ToomProtocol(),
      // Memory, logins, fan-out and direct messages; capacity and stopping are as without TLS.
      full: false,
      start: (max) => ToomServer.start(options.toomDir, true, accounts, max),
    });
  }
  const header = [
    `TOOM load benchmark (bench/load.ts), ${
      new Date().toISOString().slice(0, 16).replace("T", " ")
    } UTC`,
    `machine: ${await machine()}; Deno ${Deno.version.deno}${ngircd ? `; ${ngircdName}` : ""}`,
    `TOOM: ${options.toomDir}; ${options.rounds} round(s); batches of ${options.batch}; ` +
    `fan-out ${options.fanoutClients} clients, ${
      options.fanouts.map((f) => `${f.messages}/${f.senders}`).join(", ")
    } (messages/senders); memory at ${options.memoryAt.join(", ")}; ramp to ${options.maxClients}` +
    ` in ${options.capacityRounds} round(s); ${options.dmTrips} DM round trips; stop at ${options.stopAt}`,
  ];
  const results: Results = new Map();
  const failsafe = setTimeout(() => {
    console.error(`The run did not finish within ${options.timeLimit} s; giving up`);
    for (const server of running) (server as ServerProcess).disposeSync();
    printTable(options, targets, results, header, true);
    Deno.exit(1);
  }, options.timeLimit * 1000);
  // Ctrl-C: no server or temporary directory is left behind.
  const interrupted = () => {
    for (const server of running) (server as ServerProcess).disposeSync();
    Deno.exit(130);
  };
  Deno.addSignalListener("SIGINT", interrupted);
  const runStarted = performance.now();
  try {
    for (let round = 0; round < options.rounds; round++) {
      // Rotate the order every round, so that no server always goes first.
      const order = targets.map((_, i) => targets[(i + round) % targets.length]!);
      const scenarios: Array<[string, (target: Target) => Promise<void>]> = [
        ["fan-out", (target) => fanoutScenario(target, options, results)],
        [
          "ramp",
          (target) => rampScenario(target, options, results, round < options.capacityRounds),
        ],
      ];
      if (options.stopAt > 0) {
        scenarios.push(["stop", (target) => stopScenario(target, options, results)]);
      }
      for (const [what, run] of scenarios) {
        for (const target of order) {
          if (what === "stop" && !target.full) continue;
          const began = performance.now();
          try {
            await run(target);
          } catch (error) {
            note(`round ${round + 1}, ${target.name} ${what}: ${(error as Error).message}`);
          }
          console.error(
            `round ${round + 1}/${options.rounds}: ${target.name} ${what} done in ${
              ((performance.now() - began) / 1000).toFixed(1)
            } s (${((performance.now() - runStarted) / 1000).toFixed(0)} s so far)`,
          );
        }
      }
    }
    printTable(options, targets, results, header, false);
    return 0;
  } finally {
    clearTimeout(failsafe);
    Deno.removeSignalListener("SIGINT", interrupted);
    for (const server of [...running]) await server.dispose();
  }
}

if (import.meta.main) Deno.exit(await main());
