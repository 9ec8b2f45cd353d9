/**
 * Benchmark of the P2P engine: moves a 64 MiB random file between two deno processes on
 * 127.0.0.1 over UDP at 0 % and 5 % injected loss (dropped on the sender side through the lossy
 * seam, seeded), next to a plain TCP copy of the same file by the same runtime in the same run,
 * and the same file sent with `UPD` between two real ./chat-client processes through a real
 * ./chat-server (bench/p2p_clients.ts; built with `deno task build` if missing), timed from typing
 * the command to the sender's `<file> has been uploaded`.
 *
 *     deno run --allow-net --allow-read --allow-write --allow-run bench/p2p.ts [MiB] [runs]
 *
 * (No --allow-env needed: the clients and server get NO_COLOR through Deno.Command's `env`, which
 * needs only --allow-run; passing --allow-env as well does no harm.)
 *
 * Each configuration runs `runs` times (default 3) and the median run (by MB/s) is printed with the
 * range of all runs, after one untimed warm-up transfer (the UPD line: one untimed UPD in the same
 * client session). Only talks to 127.0.0.1; stops by itself (240 s failsafe for the whole run,
 * which also kills any server or client it started and removes their directories).
 */

import { readLines } from "../lib/shared/lines.ts";
import { createHash } from "node:crypto";
import { issueTickets, PeerNode, type TransferResult, UdpSocket } from "../lib/p2p/mod.ts";
import { abandonPrograms, ClientPair } from "./p2p_clients.ts";

const FAILSAFE_MS = 240_000;
const SIZE_MIB = Number(Deno.args[0] ?? "64");
const RUNS = Math.max(1, Math.floor(Number(Deno.args[1] ?? "3")));
const SIZE = SIZE_MIB * 1024 * 1024;
const PEER_SCRIPT = new URL("./p2p_peer.ts", import.meta.url).pathname;
const MB = 1e6;

interface Child {
  process: Deno.ChildProcess;
  writer: WritableStreamDefaultWriter<Uint8Array>;
  lines: AsyncIterator<string>;
}

function spawnPeer(args: string[]): Child {
  const process = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-net=127.0.0.1", "--allow-read", "--allow-write", PEER_SCRIPT, ...args],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  return { process, writer: process.stdin.getWriter(), lines: readLines(process.stdout) };
}

async function nextJson(child: Child): Promise<Record<string, unknown>> {
  while (true) {
    const { value, done } = await child.lines.next();
    if (done) throw new Error("Peer process ended early");
    if (value.trim()) return JSON.parse(value);
  }
}

async function send(child: Child, value: unknown): Promise<void> {
  await child.writer.write(new TextEncoder().encode(JSON.stringify(value) + "\n"));
}

async function finish(child: Child): Promise<void> {
  await child.writer.close().catch(() => {});
  while (!(await child.lines.next()).done) { /* drain */ }
  await child.process.status;
}

async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  const file = await Deno.open(path, { read: true });
  for await (const chunk of file.readable) hash.update(chunk);
  return hash.digest("hex");
}

async function makeRandomFile(path: string, size: number): Promise<void> {
  const file = await Deno.open(path, { write: true, create: true, truncate: true });
  const block = new Uint8Array(1 << 20);
  for (let done = 0; done < size; done += block.length) {
    for (let i = 0; i < block.length; i += 65536) {
      crypto.getRandomValues(block.subarray(i, i + 65536));
    }
    let written = 0;
    const part = block.subarray(0, Math.min(block.length, size - done));
    while (written < part.length) written += await file.write(part.subarray(written));
  }
  file.close();
}

interface Row {
  label: string;
  mbPerSecond: number;
  datagramsPerSecond?: number;
  retransmissionRatio?: number;
  elapsedMs: number;
  /** MB/s of every run of this configuration, when there were several. */
  range?: [number, number];
  /** Datagram counts exist but are not visible from here (printed as "–"). */
  datagramsHidden?: true;
}

/** Runs `once` RUNS times; returns the median run (by MB/s) with the range of all of them. */
async function median(once: () => Promise<Row>): Promise<Row> {
  const rows: Row[] = [];
  for (let i = 0; i < RUNS; i++) rows.push(await once());
  rows.sort((a, b) => a.mbPerSecond - b.mbPerSecond);
  const middle = rows[Math.floor((rows.length - 1) / 2)]!;
  return { ...middle, range: [rows[0]!.mbPerSecond, rows[rows.length - 1]!.mbPerSecond] };
}

async function runUdp(source: string, dir: string, loss: number): Promise<Row> {
  const received = Promise.withResolvers<string>();
  const node = new PeerNode(new UdpSocket({ hostname: "127.0.0.1", port: 0 }), {
    downloadDir: dir,
    events: {
      onFileReceived: (r) => received.resolve(r.savedAs),
      onTransferFailed: (f) =>
        received.reject(new Error(`Receive failed: ${f.reason} ${f.detail}`)),
    },
  });
  const child = spawnPeer(["udp", String(loss), "20240601"]);
  try {
    const { port } = await nextJson(child) as { port: number };
    const [forSender, forReceiver] = issueTickets({
      kind: "file",
      from: "yoda",
      to: "hans",
      fromAddress: { hostname: "127.0.0.1", port },
      toAddress: node.localAddress,
      fileName: `bench-${loss}.bin`,
    });
    node.accept(forReceiver);
    const started = performance.now();
    await send(child, { ticket: forSender, path: source });
    const savedAs = await received.promise;
    const receivedMs = performance.now() - started;
    const { result } = await nextJson(child) as { result: TransferResult };
    if (await sha256File(savedAs) !== result.sha256) throw new Error("SHA-256 mismatch");
    await Deno.remove(savedAs);
    const seconds = result.elapsedMs / 1000;
    return {
      label: `UDP P2P, ${loss * 100}% loss (${result.chunkSize} B datagrams)`,
      mbPerSecond: SIZE / MB / (receivedMs / 1000),
      datagramsPerSecond: result.datagramsSent / seconds,
      retransmissionRatio: result.retransmissions / result.dataDatagramsSent,
      elapsedMs: receivedMs,
    };
  } finally {
    await finish(child);
    await node.close();
  }
}

async function runTcp(source: string, dir: string): Promise<Row> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const child = spawnPeer(["tcp"]);
  try {
    const target = `${dir}/tcp-copy.bin`;
    const accepting = listener.accept();
    const started = performance.now();
    await send(child, { port: listener.addr.port, path: source });
    const conn = await accepting;
    const file = await Deno.open(target, { write: true, create: true, truncate: true });
    await conn.readable.pipeTo(file.writable);
    const elapsedMs = performance.now() - started;
    if (await sha256File(target) !== await sha256File(source)) throw new Error("TCP copy differs");
    await Deno.remove(target);
    return {
      label: "TCP copy (same runtime)",
      mbPerSecond: SIZE / MB / (elapsedMs / 1000),
      elapsedMs,
    };
  } finally {
    listener.close();
    await finish(child);
  }
}

/** `UPD` between two real chat-client processes; one session, one untimed warm-up, RUNS timed. */
async function runClients(source: string): Promise<Row> {
  const pair = await ClientPair.start();
  try {
    const fileName = "big.bin";
    await Deno.copyFile(source, `${pair.yodaDir}/${fileName}`);
    const sha256 = await sha256File(source);
    const once = async (): Promise<Row> => {
      const { elapsedMs } = await pair.upd(fileName, sha256, sha256File);
      return {
        label: "UPD between two chat-client processes",
        mbPerSecond: SIZE / MB / (elapsedMs / 1000),
        elapsedMs,
        datagramsHidden: true,
      };
    };
    await once();
    return await median(once);
  } finally {
    await pair.stop();
  }
}

async function main(): Promise<void> {
  const failsafe = setTimeout(() => {
    console.error(`Benchmark did not finish within ${FAILSAFE_MS / 1000} s; giving up`);
    abandonPrograms();
    Deno.exit(1);
  }, FAILSAFE_MS);
  const dir = await Deno.makeTempDir({ prefix: "toom_p2p_bench_" });
  try {
    const source = `${dir}/source.bin`;
    await makeRandomFile(source, SIZE);
    const rows: Row[] = [];
    // One untimed transfer first: the receiving (this) process would otherwise run its first
    // measured transfer with cold, unoptimised code. Every sender is a fresh process anyway.
    await runUdp(source, dir, 0);
    rows.push(await median(() => runTcp(source, dir)));
    rows.push(await median(() => runUdp(source, dir, 0)));
    rows.push(await median(() => runUdp(source, dir, 0.05)));
    rows.push(await runClients(source));
    console.log(
      `Moving a ${SIZE_MIB} MiB random file between two processes on 127.0.0.1 ` +
        `(median of ${RUNS} run${RUNS === 1 ? "" : "s"}, range in brackets):`,
    );
    for (const row of rows) {
      const range = row.range === undefined || RUNS === 1
        ? ""
        : ` [${row.range[0].toFixed(0)}–${row.range[1].toFixed(0)}]`;
      const extra = row.datagramsHidden
        ? `  ${"–".padStart(7)} datagrams/s  retransmitted –`
        : row.datagramsPerSecond === undefined
        ? ""
        : `  ${row.datagramsPerSecond.toFixed(0).padStart(7)} datagrams/s  retransmitted ${
          (100 * row.retransmissionRatio!).toFixed(1)
        }%`;
      console.log(
        `  ${row.label.padEnd(44)} ${row.mbPerSecond.toFixed(1).padStart(7)} MB/s${
          range.padEnd(12)
        } ${(row.elapsedMs / 1000).toFixed(2)} s${extra}`,
      );
    }
  } finally {
    clearTimeout(failsafe);
    await Deno.remove(dir, { recursive: true });
  }
}

if (import.meta.main) await main();
