/**
 * What the runtime itself keeps per connection (issue 10's memory target): a bare Deno server, no
 * TOOM code, holds N idle TCP connections on 127.0.0.1, each with one pending `conn.read()` into
 * 1 KiB, and prints its RSS per connection after a forced garbage collection, first without and
 * then with the burst a chat server's logins cause (each new connection sends a 62-byte line to
 * every connection already there, N²/2 lines in all, written as TOOM writes them: one queue per
 * connection, what queued meanwhile coalesced into the next write).
 *
 *     deno run -A bench/runtime_floor.ts [--clients 5000] [--rounds 3]
 *
 * The server is a child process of its own (this file with `--serve`); this process opens the
 * connections and reads everything the server sends. Bounded: every wait has a timeout, 127.0.0.1
 * only, the child is killed at the end. Nothing is asserted.
 */
import { parseArgs } from "node:util";
import { readLines } from "../lib/shared/lines.ts";

const LINE = new TextEncoder().encode(
  '{"t":"event","kind":"presence","lines":["user0000 logged in"]}\n',
);
const TIMEOUT_MS = 300_000;

/** The server: accepts, fans a line to everyone at each accept (--burst), answers `rss`. */
async function serve(burst: boolean): Promise<void> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  console.log((listener.addr as Deno.NetAddr).port);
  const queues = new Map<Deno.Conn, { parts: Uint8Array[]; busy: boolean }>();
  const pump = async (conn: Deno.Conn) => {
    const queue = queues.get(conn)!;
    queue.busy = true;
    while (queue.parts.length > 0) {
      let size = 0;
      for (const part of queue.parts) size += part.length;
      const batch = new Uint8Array(size);
      let offset = 0;
      for (const part of queue.parts.splice(0)) {
        batch.set(part, offset);
        offset += part.length;
      }
      for (let done = 0; done < batch.length;) done += await conn.write(batch.subarray(done));
    }
    queue.busy = false;
  };
  (async () => {
    for await (const conn of listener) {
      if (burst) {
        for (const [other, queue] of queues) {
          queue.parts.push(LINE);
          if (!queue.busy) void pump(other);
        }
      }
      queues.set(conn, { parts: [], busy: false });
      (async () => {
        const buffer = new Uint8Array(1024);
        while ((await conn.read(buffer)) !== null) { /* idle */ }
      })().catch(() => {});
    }
  })().catch(() => {});
  const gc = (globalThis as { gc?: () => void }).gc;
  for await (const _ of readLines(Deno.stdin.readable)) {
    gc?.();
    gc?.();
    const usage = Deno.memoryUsage();
    console.log(`${usage.rss} ${usage.heapUsed} ${usage.heapTotal}`);
  }
}

/** One round: a server child, N connections, RSS per connection (and its V8 heap parts). */
async function measure(clients: number, burst: boolean) {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--v8-flags=--expose-gc",
      new URL(import.meta.url).pathname,
      "--serve",
      ...(burst ? ["--burst"] : []),
    ],
    stdin: "piped",
    stdout: "piped",
  }).spawn();
  const lines = readLines(child.stdout);
  const next = async () => (await lines.next()).value ?? "";
  const writer = child.stdin.getWriter();
  const usage = async () => {
    await writer.write(new TextEncoder().encode("rss\n"));
    return (await next()).split(" ").map(Number) as [number, number, number];
  };
  const conns: Deno.Conn[] = [];
  try {
    const port = Number(await next());
    const before = await usage();
    let received = 0;
    for (let i = 0; i < clients; i++) {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      conns.push(conn);
      (async () => {
        const buffer = new Uint8Array(65536);
        for (let n; (n = await conn.read(buffer)) !== null;) received += n;
      })().catch(() => {});
    }
    const expected = burst ? (clients * (clients - 1) / 2) * LINE.length : 0;
    const deadline = Date.now() + TIMEOUT_MS;
    while (received < expected && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    // What is in flight on 127.0.0.1 has landed; the idle state is what is measured.
    await new Promise((resolve) => setTimeout(resolve, 500));
    const after = await usage();
    return {
      rss: (after[0] - before[0]) / clients,
      heapUsed: (after[1] - before[1]) / clients,
      heapTotal: (after[2] - before[2]) / clients,
    };
  } finally {
    for (const conn of conns) conn.close();
    await writer.close().catch(() => {});
    child.kill();
    await child.status;
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      serve: { type: "boolean", default: false },
      burst: { type: "boolean", default: false },
      clients: { type: "string", default: "5000" },
      rounds: { type: "string", default: "3" },
    },
  });
  if (values.serve) return await serve(values.burst);
  const clients = Number(values.clients);
  const rounds = Number(values.rounds);
  console.log(
    `Bare Deno ${Deno.version.deno} server, ${clients} idle connections on 127.0.0.1, ` +
      `${navigator.hardwareConcurrency} CPUs; per connection, median [min–max] of ${rounds} ` +
      "rounds:",
  );
  for (const burst of [false, true]) {
    const results: Array<Awaited<ReturnType<typeof measure>>> = [];
    for (let i = 0; i < rounds; i++) results.push(await measure(clients, burst));
    const show = (key: "rss" | "heapUsed" | "heapTotal") => {
      const kib = results.map((result) => result[key] / 1024);
      return `${median(kib).toFixed(1)} KiB [${Math.min(...kib).toFixed(1)}–${
        Math.max(...kib).toFixed(1)
      }]`;
    };
    console.log(
      `  ${burst ? "after the login burst" : "idle, no burst        "}  RSS ${show("rss")}` +
        `   V8 heap used ${show("heapUsed")}, committed ${show("heapTotal")}`,
    );
  }
}

if (import.meta.main) await main();
