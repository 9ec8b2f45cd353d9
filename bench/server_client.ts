/**
 * Helper process of bench/server.ts: the load generator, in its own process so that the server
 * (in the parent) has a core to itself. It speaks the real protocol through lib/client_link.ts
 * over TCP to 127.0.0.1 only.
 *
 *     deno run --allow-net=127.0.0.1 bench/server_client.ts <port> <accounts> <password prefix>
 *
 * It talks to the parent with JSON lines: it prints `{"op":"start"|"end"|"seed",...}` on stdout
 * and waits for one JSON line on stdin in answer to each, so the parent can read CPU times at the
 * edges of every timed phase (start and end carry this process's own) and seed the board. It prints `{"op":"done"}` last.
 */

import { readLines } from "../lib/shared/lines.ts";
import process from "node:process";
import { type Reply, ServerLink } from "../lib/client/server_link.ts";
import type { EventFrame } from "../lib/shared/protocol.ts";
import { tcpConnection } from "../lib/shared/transport.ts";

/** What one timed phase reports to the parent. */
export interface PhaseResult {
  phase: string;
  label: string;
  /** Operations timed (messages, deliveries, RDMs, logins). */
  count: number;
  unit: string;
  elapsedMs: number;
  /** Request latency percentiles, ms. */
  p50?: number;
  p99?: number;
  max?: number;
  note?: string;
}

const FAILSAFE_MS = 115_000;
const WINDOW = 32;
const HOST = "127.0.0.1";

const [portText, accountsText, prefixText] = Deno.args;
const PORT = Number(portText);
const ACCOUNTS = Number(accountsText ?? "50");
const PASSWORD_PREFIX = prefixText ?? "pw";

// ---------------------------------------------------------------------------------------------
// Control channel with the parent.

const stdinLinesIterator = readLines(Deno.stdin.readable);
const stdinLines = async () => (await stdinLinesIterator.next()).value;

/** Sends one control line to the parent and waits for its one-line answer. */
async function control(message: Record<string, unknown>): Promise<Record<string, unknown>> {
  console.log(JSON.stringify(message));
  const answer = await stdinLines();
  if (answer === undefined) throw new Error("Parent closed the control channel");
  return JSON.parse(answer);
}

/** User + system CPU seconds this process has used. */
function cpuSeconds(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1e6;
}

async function timed(
  phase: string,
  work: () => Promise<Omit<PhaseResult, "phase" | "elapsedMs">>,
): Promise<void> {
  await control({ op: "start", phase, cpu: cpuSeconds() });
  const started = performance.now();
  const result = await work();
  const elapsedMs = performance.now() - started;
  await control({ op: "end", cpu: cpuSeconds(), result: { phase, elapsedMs, ...result } });
}

// ---------------------------------------------------------------------------------------------
// Clients.

interface Client {
  link: ServerLink;
  name: string;
  /** Events received, by kind. */
  events: Map<string, number>;
  /** Called after every event (the broadcast phase waits on it). */
  onEvent?: (event: EventFrame) => void;
}

function userName(index: number): string {
  return `user${index}`;
}

async function login(index: number): Promise<Client> {
  const conn = await Deno.connect({ hostname: HOST, port: PORT });
  const client: Client = { link: undefined!, name: userName(index), events: new Map() };
  client.link = new ServerLink(tcpConnection(conn), {
    onEvent: (event) => {
      client.events.set(event.kind, (client.events.get(event.kind) ?? 0) + 1);
      client.onEvent?.(event);
    },
  });
  await client.link.hello();
  expectOk(await client.link.request({ t: "user", name: client.name }), "user");
  expectOk(
    await client.link.request({
      t: "pass",
      password: `${PASSWORD_PREFIX}${index}`,
      udpPort: 0,
    }),
    "pass",
  );
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

function expectOk(reply: Reply, what: string): Reply {
  if (!reply.ok) throw new Error(`${what} failed: ${reply.code} ${reply.lines.join(" / ")}`);
  return reply;
}

/**
 * Sends `count` requests made by `line(i)` with up to `window` outstanding, each as soon as an
 * earlier reply has come back; records every request's latency (ms) in `latencies`.
 */
async function pipelined(
  client: Client,
  count: number,
  window: number,
  line: (i: number) => string,
  latencies: number[],
): Promise<void> {
  let next = 0;
  const lane = async () => {
    while (next < count) {
      const i = next++;
      const sent = performance.now();
      const reply = await client.link.request({ t: "cmd", line: line(i) });
      latencies.push(performance.now() - sent);
      expectOk(reply, line(i).split(" ")[0]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(window, count) }, lane));
}

function percentiles(latencies: number[]): { p50: number; p99: number; max: number } {
  const sorted = Float64Array.from(latencies).sort();
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
  return { p50: at(0.5), p99: at(0.99), max: sorted[sorted.length - 1] ?? 0 };
}

// ---------------------------------------------------------------------------------------------
// Phases.

async function msgPhase(
  phase: string,
  clientCount: number,
  perClient: number,
): Promise<void> {
  const clients = await Promise.all(Array.from({ length: clientCount }, (_, i) => login(i)));
  const latencies: number[] = [];
  await timed(phase, async () => {
    await Promise.all(
      clients.map((client) =>
        pipelined(
          client,
          perClient,
          WINDOW,
          (i) => `MSG benchmark message ${i} from ${client.name}`,
          latencies,
        )
      ),
    );
    return {
      label: `MSG, ${clientCount} client${clientCount === 1 ? "" : "s"} × ${perClient}`,
      count: clientCount * perClient,
      unit: "msg/s",
      ...percentiles(latencies),
      note: `window ${WINDOW}/client`,
    };
  });
  await Promise.all(clients.map(logout));
}

async function broadcastPhase(phase: string, online: number, count: number): Promise<void> {
  const clients = await Promise.all(Array.from({ length: online }, (_, i) => login(i)));
  const [sender, ...recipients] = clients;
  let waiting = recipients.length;
  const allDelivered = Promise.withResolvers<void>();
  for (const recipient of recipients) {
    let got = 0;
    recipient.onEvent = (event) => {
      if (event.kind !== "broadcast") return;
      if (++got === count && --waiting === 0) allDelivered.resolve();
    };
  }
  const latencies: number[] = [];
  await timed(phase, async () => {
    await pipelined(sender!, count, WINDOW, (i) => `broadcast fan-out ${i}`, latencies);
    await allDelivered.promise;
    return {
      label: `broadcast, 1 → ${recipients.length} recipients × ${count}`,
      count: recipients.length * count,
      unit: "deliveries/s",
      ...percentiles(latencies),
      note: `latency = sender's reply; window ${WINDOW}`,
    };
  });
  await Promise.all(clients.map(logout));
}

async function rdmPhase(phase: string, seed: number, runs: number): Promise<void> {
  // A kept board (--keep-board) still holds the MSG phases' posts: it is read as it is.
  const { size: boardSize } = await control({ op: "seed", count: seed }) as { size: number };
  if (boardSize < seed) throw new Error(`Board has ${boardSize} messages`);
  const client = await login(0);
  const line = "RDM 01 Jan 2000 00:00:00";
  // Two untimed reads first, so both sides run warm code.
  let replyBytes = 0;
  for (let i = 0; i < 2; i++) {
    const reply = expectOk(await client.link.request({ t: "cmd", line }), "RDM");
    if (reply.lines.length !== boardSize) {
      throw new Error(`RDM returned ${reply.lines.length} lines, not ${boardSize}`);
    }
    replyBytes = new TextEncoder().encode(JSON.stringify(reply.lines)).length;
  }
  const latencies: number[] = [];
  await timed(phase, async () => {
    for (let i = 0; i < runs; i++) {
      const sent = performance.now();
      const reply = expectOk(await client.link.request({ t: "cmd", line }), "RDM");
      latencies.push(performance.now() - sent);
      if (reply.lines.length !== boardSize) throw new Error("RDM returned a short board");
    }
    return {
      label: `RDM of a ${boardSize.toLocaleString("en")}-message board × ${runs}`,
      count: runs,
      unit: "RDM/s",
      ...percentiles(latencies),
      note: `one at a time; ~${Math.round(replyBytes / 1024)} KiB of lines per reply`,
    };
  });
  await logout(client);
}

/**
 * Direct messages to online users: `senders` clients each send `perSender` to a recipient of
 * their own among `senders` more (user i → user i + senders); the phase ends when every
 * message has arrived.
 */
async function dmPhase(phase: string, senders: number, perSender: number): Promise<void> {
  const clients = await Promise.all(Array.from({ length: 2 * senders }, (_, i) => login(i)));
  const allDelivered = Promise.withResolvers<void>();
  let waiting = senders * perSender;
  for (const recipient of clients.slice(senders)) {
    recipient.onEvent = (event) => {
      if (event.kind === "message" && --waiting === 0) allDelivered.resolve();
    };
  }
  const latencies: number[] = [];
  await timed(phase, async () => {
    await Promise.all(
      clients.slice(0, senders).map((client, i) =>
        pipelined(
          client,
          perSender,
          WINDOW,
          (n) => `message ${userName(i + senders)} direct message ${n}`,
          latencies,
        )
      ),
    );
    await allDelivered.promise;
    return {
      label: `message (online), ${senders} senders × ${perSender}`,
      count: senders * perSender,
      unit: "msg/s",
      ...percentiles(latencies),
      note: `latency = sender's reply; window ${WINDOW}/client`,
    };
  });
  await Promise.all(clients.map(logout));
}

/**
 * Direct messages to offline users, each kept until its recipient logs in: `senders` clients
 * each send `each` to every one of `recipients` offline accounts (the last ones); afterwards
 * (untimed) every recipient logs in once to take them, so later phases start with empty mailboxes.
 */
async function offlinePhase(
  phase: string,
  senders: number,
  recipients: number,
  each: number,
): Promise<void> {
  const clients = await Promise.all(Array.from({ length: senders }, (_, i) => login(i)));
  const first = ACCOUNTS - recipients;
  const latencies: number[] = [];
  await timed(phase, async () => {
    await Promise.all(clients.map((client) =>
      pipelined(
        client,
        recipients * each,
        WINDOW,
        (n) => `message ${userName(first + (n % recipients))} kept for later ${n}`,
        latencies,
      )
    ));
    return {
      label: `message (offline, kept), ${senders} senders × ${recipients * each}`,
      count: senders * recipients * each,
      unit: "msg/s",
      ...percentiles(latencies),
      note: `latency = sender's reply (after the commit); window ${WINDOW}/client`,
    };
  });
  await Promise.all(clients.map(logout));
  for (let i = first; i < ACCOUNTS; i++) await logout(await login(i));
}

async function loginPhase(phase: string, workers: number, total: number): Promise<void> {
  const latencies: number[] = [];
  await timed(phase, async () => {
    let next = 0;
    // Worker w owns accounts w, w + workers, w + 2·workers, …, so no two workers ever log in
    // as the same user at once (the server denies duplicate logins).
    const worker = async (w: number) => {
      const mine: number[] = [];
      for (let a = w; a < ACCOUNTS; a += workers) mine.push(a);
      let turn = 0;
      while (next < total) {
        next++;
        const started = performance.now();
        const client = await login(mine[turn++ % mine.length]!);
        latencies.push(performance.now() - started);
        await logout(client);
      }
    };
    await Promise.all(Array.from({ length: workers }, (_, w) => worker(w)));
    return {
      label: `login (clear text), ${workers} at a time × ${total}`,
      count: total,
      unit: "logins/s",
      ...percentiles(latencies),
      note: "latency = connect → welcome; each cycle also OUTs",
    };
  });
}

async function main(): Promise<void> {
  const failsafe = setTimeout(() => {
    console.error(`server_client: no finish within ${FAILSAFE_MS / 1000} s; giving up`);
    Deno.exit(1);
  }, FAILSAFE_MS);
  const {
    msgSingle,
    msgMany,
    msgClients,
    online,
    broadcasts,
    board,
    rdmRuns,
    logins,
    workers,
    dmSenders,
    dmEach,
    offlineSenders,
    offlineRecipients,
    offlineEach,
  } = await control({ op: "config" }) as Record<string, number>;
  // Untimed warm-up: both processes compile their hot paths before anything is measured.
  await msgPhase("warmup", 4, 500);
  await msgPhase("msg1", 1, msgSingle!);
  await msgPhase("msgN", msgClients!, msgMany!);
  await broadcastPhase("broadcast", online!, broadcasts!);
  await dmPhase("dm", dmSenders!, dmEach!);
  await offlinePhase("offline", offlineSenders!, offlineRecipients!, offlineEach!);
  await rdmPhase("rdm", board!, rdmRuns!);
  await loginPhase("login", workers!, logins!);
  clearTimeout(failsafe);
  console.log(JSON.stringify({ op: "done" }));
}

if (import.meta.main) await main();
