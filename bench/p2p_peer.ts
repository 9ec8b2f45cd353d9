/**
 * Helper process of bench/p2p.ts: the sending side of one benchmark run, in its own process.
 * It reads one JSON line of instructions from stdin and prints JSON lines on stdout.
 *
 * - `udp <loss> <seed>`: binds UDP on 127.0.0.1:0, prints `{"port"}`, reads
 *   `{"ticket","path"}`, sends the file through a PeerNode (dropping `loss` of its own datagrams
 *   through the lossy seam) and prints the TransferResult.
 * - `tcp`: reads `{"port","path"}`, connects to 127.0.0.1 and copies the file over TCP.
 */

import { LossySocket, parseTicket, PeerNode, UdpSocket } from "../lib/p2p/mod.ts";
import type { DatagramSocket } from "../lib/p2p/mod.ts";

async function readLine(): Promise<string> {
  const reader = Deno.stdin.readable.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) break;
    text += value;
  }
  reader.releaseLock();
  return text.split("\n")[0] ?? "";
}

function print(value: unknown): void {
  console.log(JSON.stringify(value));
}

async function main(): Promise<void> {
  const [mode, lossText, seedText] = Deno.args;
  if (mode === "udp") {
    const loss = Number(lossText ?? "0");
    const udp = new UdpSocket({ hostname: "127.0.0.1", port: 0 });
    const socket: DatagramSocket = loss > 0
      ? new LossySocket(udp, { seed: Number(seedText ?? "1"), loss })
      : udp;
    const node = new PeerNode(socket, { downloadDir: Deno.makeTempDirSync() });
    print({ port: udp.localAddress.port });
    const { ticket, path } = JSON.parse(await readLine());
    const result = await node.sendFile(parseTicket(ticket), path);
    print({ result, lossStats: socket instanceof LossySocket ? socket.stats : undefined });
    await node.close();
  } else if (mode === "tcp") {
    const { port, path } = JSON.parse(await readLine());
    const file = await Deno.open(path, { read: true });
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    const started = performance.now();
    await file.readable.pipeTo(conn.writable);
    print({ elapsedMs: performance.now() - started });
  } else {
    throw new TypeError(`Unknown mode ${mode}`);
  }
}

if (import.meta.main) await main();
