/** File transfer between PeerNodes: integrity under loss, attacks, failures and name safety. */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import {
  type DatagramSocket,
  type FileReceived,
  isRevocation,
  issueTickets,
  LossySocket,
  MemoryNetwork,
  PeerNode,
  type PeerNodeOptions,
  REVOKED_DETAIL,
  TransferError,
  type TransferFailed,
  UdpSocket,
} from "../../lib/p2p/mod.ts";
import {
  Direction,
  encodePacket,
  importKey,
  type Message,
  PacketType,
  ticketIdBytes,
} from "../../lib/p2p/wire.ts";
import { tempDir } from "../../testing/temp_dir.ts";

const CAN_USE_FILES = Deno.permissions.querySync({ name: "read" }).state === "granted" &&
  Deno.permissions.querySync({ name: "write" }).state === "granted";
if (!CAN_USE_FILES) {
  console.log("(file transfer tests ignored: they need --allow-read --allow-write)");
}

/** Fast timers so failures and retransmissions do not take real seconds. */
const FAST: Partial<PeerNodeOptions> = {
  initialRtoMs: 40,
  minRtoMs: 10,
  maxRtoMs: 200,
  idleTimeoutMs: 1500,
  handshakeTimeoutMs: 1500,
  handshakeRetryMs: 20,
  messageRetryMs: 40,
  messageGiveUpMs: 400,
  lingerMs: 1000,
  progressIntervalMs: 20,
};

interface Peer {
  name: string;
  node: PeerNode;
  dir: string;
  received: FileReceived[];
  failed: TransferFailed[];
}

/** A peer that owns its download directory: disposing it closes the node, then removes the dir. */
interface OwnedPeer extends Peer, AsyncDisposable {}

/** Two peers, yoda (a) and hans (b); disposing closes both nodes and removes both dirs. */
interface PeerPair extends AsyncDisposable {
  a: Peer;
  b: Peer;
}

interface Faults {
  loss?: number;
  duplicate?: number;
  reorder?: number;
  corrupt?: number;
  seed?: number;
}

function makePeer(
  name: string,
  socket: DatagramSocket,
  dir: string,
  options: Partial<PeerNodeOptions> = {},
): Peer {
  const peer: Peer = { name, dir, received: [], failed: [], node: undefined! };
  peer.node = new PeerNode(socket, {
    ...FAST,
    ...options,
    downloadDir: dir,
    events: {
      onFileReceived: (r) => peer.received.push(r),
      onTransferFailed: (f) => peer.failed.push(f),
    },
  });
  return peer;
}

/** A peer on `socket()` that saves into a fresh directory of its own (named `prefix`...). */
async function ownedPeer(
  name: string,
  socket: () => DatagramSocket,
  prefix: string,
  options: Partial<PeerNodeOptions> = {},
): Promise<OwnedPeer> {
  await using stack = new AsyncDisposableStack(); // undoes a half-made peer if anything throws
  const dir = stack.use(await tempDir(prefix));
  const peer = makePeer(name, socket(), dir.path, options);
  stack.defer(() => peer.node.close());
  const owned = stack.move();
  return Object.assign(peer, { [Symbol.asyncDispose]: () => owned.disposeAsync() });
}

/** Makes peer a, then peer b; disposing the pair disposes b, then a. */
async function pairOf(
  makeA: () => Promise<OwnedPeer>,
  makeB: () => Promise<OwnedPeer>,
): Promise<PeerPair> {
  await using stack = new AsyncDisposableStack(); // disposes a again if b cannot be made
  const a = stack.use(await makeA());
  const b = stack.use(await makeB());
  const owned = stack.move();
  return { a, b, [Symbol.asyncDispose]: () => owned.disposeAsync() };
}

/** `node`, closed when disposed too (closing it earlier is fine: `close()` is idempotent). */
function closedAtEnd(node: PeerNode): PeerNode & AsyncDisposable {
  return Object.assign(node, { [Symbol.asyncDispose]: () => node.close() });
}

function lossy(socket: DatagramSocket, faults: Faults, seed: number): DatagramSocket {
  if (!faults.loss && !faults.duplicate && !faults.reorder && !faults.corrupt) return socket;
  return new LossySocket(socket, { seed, ...faults });
}

/** Two peers on an in-memory network with faults injected in both directions. */
function memoryPair(
  faults: Faults = {},
  options: Partial<PeerNodeOptions> = {},
): Promise<PeerPair> {
  const network = new MemoryNetwork();
  const seed = faults.seed ?? 1;
  return pairOf(
    () => ownedPeer("yoda", () => lossy(network.socket(), faults, seed), "p2p_a_", options),
    () => ownedPeer("hans", () => lossy(network.socket(), faults, seed + 1000), "p2p_b_", options),
  );
}

function udpPair(options: Partial<PeerNodeOptions> = {}): Promise<PeerPair> {
  const udp = () => new UdpSocket({ hostname: "127.0.0.1", port: 0 });
  return pairOf(
    () => ownedPeer("yoda", udp, "p2p_a_", options),
    () => ownedPeer("hans", udp, "p2p_b_", options),
  );
}

let fileCounter = 0;

async function randomFile(dir: string, size: number, name = `data${fileCounter++}.bin`) {
  const path = `${dir}/${name}`;
  using file = await Deno.open(path, { write: true, create: true, truncate: true });
  const block = new Uint8Array(65536);
  for (let done = 0; done < size; done += block.length) {
    crypto.getRandomValues(block);
    await file.write(block.subarray(0, Math.min(block.length, size - done)));
  }
  return path;
}

async function sha256Of(path: string): Promise<string> {
  return createHash("sha256").update(await Deno.readFile(path)).digest("hex");
}

function tickets(from: Peer, to: Peer, fileName: string) {
  return issueTickets({
    kind: "file",
    from: from.name,
    to: to.name,
    fromAddress: from.node.localAddress,
    toAddress: to.node.localAddress,
    fileName,
  });
}

async function transfer(from: Peer, to: Peer, path: string, fileName: string) {
  const [send, receive] = tickets(from, to, fileName);
  to.node.accept(receive);
  return await from.node.sendFile(send, path);
}

async function listDir(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(dir)) names.push(entry.name);
  return names.sort();
}

async function waitFor(condition: () => boolean, ms = 10_000): Promise<void> {
  const deadline = performance.now() + ms;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error("Timed out waiting for a condition");
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

const SIZES: [string, number][] = [
  ["0 B", 0],
  ["1 B", 1],
  ["exactly one datagram", 1200],
  ["one byte over a datagram", 1201],
  ["2 MiB", 2 * 1024 * 1024 + 77],
];

for (const loss of [0, 0.1, 0.3]) {
  for (const [label, size] of SIZES) {
    const faults = loss === 0 ? {} : { loss, duplicate: 0.05, reorder: 0.1, seed: size + 7 };
    Deno.test({
      name: `sendFile() delivers a ${label} file byte-identical at ${loss * 100}% loss${
        loss ? " with duplication and reordering" : ""
      }`,
      ignore: !CAN_USE_FILES,
      fn: async () => {
        await using peers = await memoryPair(faults, { loopbackPayloadBytes: 1200 });
        const { a, b } = peers;
        const path = await randomFile(a.dir, size);
        const result = await transfer(a, b, path, "notes.bin");
        assert.equal(result.bytes, size);
        assert.equal(b.received.length, 1);
        const saved = b.received[0]!;
        assert.equal(saved.savedAs, `${b.dir}/yoda_notes.bin`);
        assert.equal(await sha256Of(saved.savedAs), await sha256Of(path));
        assert.equal(result.sha256, await sha256Of(path));
        assert.deepEqual(await listDir(b.dir), ["yoda_notes.bin"]);
      },
    });
  }
}

Deno.test({
  name: "sendFile() moves 4 MiB over real UDP on 127.0.0.1 with large loopback datagrams",
  ignore: !CAN_USE_FILES,
  fn: async () => {
    await using peers = await udpPair();
    const { a, b } = peers;
    const path = await randomFile(a.dir, 4 * 1024 * 1024 + 5);
    const result = await transfer(a, b, path, "big.bin");
    assert.ok(result.chunkSize > 1200, "loopback uses datagrams larger than 1,200 bytes");
    assert.equal(await sha256Of(b.received[0]!.savedAs), await sha256Of(path));
  },
});

/** Passes datagrams through, records what was sent, and can play dead like a killed process or
 * stop sending. */
class TapSocket implements DatagramSocket {
  readonly sent: { data: Uint8Array; to: { hostname: string; port: number } }[] = [];
  dead = false;
  /** Sends nothing (as over a cut link) but still receives. */
  muted = false;
  constructor(readonly inner: DatagramSocket) {}
  get localAddress() {
    return this.inner.localAddress;
  }
  send(data: Uint8Array, to: { hostname: string; port: number }): Promise<void> {
    if (this.dead || this.muted) return Promise.resolve();
    this.sent.push({ data: data.slice(), to });
    return this.inner.send(data, to);
  }
  async receive() {
    for (;;) {
      const datagram = await this.inner.receive();
      if (datagram === null || !this.dead) return datagram;
    }
  }
  close() {
    this.inner.close();
  }
}

/** Two peers on tapped in-memory sockets, and an attacker's socket on the same network. */
async function tappedPair(options: Partial<PeerNodeOptions> = {}) {
  const network = new MemoryNetwork();
  const tapA = new TapSocket(network.socket());
  const tapB = new TapSocket(network.socket());
  const settings = { loopbackPayloadBytes: 1200, ...options };
  const { a, b, [Symbol.asyncDispose]: closePeers } = await pairOf(
    () => ownedPeer("yoda", () => tapA, "p2p_a_", settings),
    () => ownedPeer("hans", () => tapB, "p2p_b_", settings),
  );
  const attacker = network.socket();
  return {
    a,
    b,
    tapA,
    tapB,
    attacker,
    async [Symbol.asyncDispose]() {
      attacker.close();
      await closePeers();
    },
  };
}

Deno.test({
  name: "forged datagrams (wrong key) are dropped and no file appears",
  ignore: !CAN_USE_FILES,
  fn: async () => {
    await using peers = await tappedPair();
    const { a, b, attacker } = peers;
    const [send, receive] = tickets(a, b, "notes.txt");
    b.node.accept(receive);
    // The attacker knows the ticket id and address but not the key.
    await using forger = closedAtEnd(
      new PeerNode(new MemoryNetwork().socket(), { ...FAST, downloadDir: a.dir }),
    );
    const forgedTicket = { ...send, key: btoa("x".repeat(32)) };
    const tap = new TapSocket(attacker);
    await using forgerNode = closedAtEnd(
      new PeerNode(tap, {
        ...FAST,
        downloadDir: a.dir,
        handshakeTimeoutMs: 200,
      }),
    );
    const path = await randomFile(a.dir, 5000);
    await assert.rejects(forgerNode.sendFile(forgedTicket, path), TransferError);
    assert.ok(b.node.stats.badTag >= 3, "offers with a bad tag were dropped");
    assert.equal(b.node.stats.accepted, 0);
    assert.deepEqual(await listDir(b.dir), []);
    await forgerNode.close();
    await forger.close();
    // The real sender still gets through afterwards.
    await a.node.sendFile(send, path);
    assert.deepEqual(await listDir(b.dir), ["yoda_notes.txt"]);
  },
});

Deno.test({
  name: "replayed datagrams are refused during the transfer and after it, and never written",
  ignore: !CAN_USE_FILES,
  fn: async () => {
    await using peers = await tappedPair({ lingerMs: 50 });
    const { a, b, tapA, attacker } = peers;
    const path = await randomFile(a.dir, 50_000);
    const [send, receive] = tickets(a, b, "notes.txt");
    b.node.accept(receive);
    const sending = a.node.sendFile(send, path);
    // Replay everything the sender said so far, from another address, while it runs.
    await waitFor(() => tapA.sent.length > 10);
    for (const { data } of tapA.sent.slice()) await attacker.send(data, b.node.localAddress);
    await sending;
    assert.ok(b.node.stats.replayed > 0, "replays were counted");
    assert.equal(await sha256Of(`${b.dir}/yoda_notes.txt`), await sha256Of(path));
    // After the ticket is gone, a full replay is just datagrams for an unknown ticket.
    await waitFor(() => b.node.stats.unknownTicket === 0 && performance.now() > 0);
    await new Promise((resolve) => setTimeout(resolve, 120));
    const before = b.node.stats.unknownTicket;
    for (const { data } of tapA.sent) await attacker.send(data, b.node.localAddress);
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(b.node.stats.unknownTicket - before, tapA.sent.length);
    assert.deepEqual(await listDir(b.dir), ["yoda_notes.txt"]);
    assert.equal(b.received.length, 1);
  },
});

Deno.test({
  name: "corrupted datagrams are dropped and the file still arrives byte-identical",
  ignore: !CAN_USE_FILES,
  fn: async () => {
    await using peers = await memoryPair({ corrupt: 0.2, seed: 99 }, {
      loopbackPayloadBytes: 1200,
    });
    const { a, b } = peers;
    const path = await randomFile(a.dir, 300_000);
    await transfer(a, b, path, "notes.bin");
    assert.ok(b.node.stats.badTag + b.node.stats.malformed > 0, "corruption was detected");
    assert.equal(await sha256Of(`${b.dir}/yoda_notes.bin`), await sha256Of(path));
    assert.deepEqual(await listDir(b.dir), ["yoda_notes.bin"]);
  },
});

Deno.test({
  name: "datagrams for an unknown ticket, reflected datagrams and junk are dropped",
  ignore: !CAN_USE_FILES,
  fn: async () => {
    await using peers = await tappedPair();
    const { a, b, attacker } = peers;
    const path = await randomFile(a.dir, 10_000);
    await transfer(a, b, path, "notes.txt");
    const unknownBefore = b.node.stats.unknownTicket;
    await attacker.send(new TextEncoder().encode("hello?"), b.node.localAddress);
    const strangers = issueTickets({
      kind: "file",
      from: "eve",
      to: "hans",
      fromAddress: attacker.localAddress,
      toAddress: b.node.localAddress,
      fileName: "x",
    });
    await using eve = closedAtEnd(
      new PeerNode(new TapSocket(attacker), {
        ...FAST,
        downloadDir: a.dir,
        handshakeTimeoutMs: 100,
      }),
    );
    await assert.rejects(eve.sendFile(strangers[0], path), { reason: "timed-out" });
    await eve.close();
    assert.ok(b.node.stats.unknownTicket > unknownBefore, "unknown ticket dropped");
    assert.ok(b.node.stats.malformed >= 1, "junk dropped");
    assert.deepEqual(await listDir(b.dir), ["yoda_notes.txt"]);
  },
});

Deno.test({
  name: "a datagram reflected back to its sender is dropped by the direction check",
  ignore: !CAN_USE_FILES,
  fn: async () => {
    await using peers = await tappedPair();
    const { a, b, tapA, attacker } = peers;
    const [send, receive] = tickets(a, b, "notes.txt");
    b.node.accept(receive);
    const path = await randomFile(a.dir, 2 * 1024 * 1024);
    const sending = a.node.sendFile(send, path);
    await waitFor(() => tapA.sent.length > 3);
    for (const { data } of tapA.sent.slice(0, 3)) await attacker.send(data, a.node.localAddress);
    await sending;
    assert.ok(a.node.stats.wrongDirection >= 3);
  },
});

Deno.test({
  name: "two transfers into one receiver at once, from two senders, both arrive intact",
  ignore: !CAN_USE_FILES,
  fn: async () => {
    const network = new MemoryNetwork();
    const options = { loopbackPayloadBytes: 1200 };
    await using a = await ownedPeer(
      "yoda",
      () => new LossySocket(network.socket(), { seed: 1, loss: 0.05 }),
      "p2p_m_",
      options,
    );
    await using c = await ownedPeer(
      "luke",
      () => new LossySocket(network.socket(), { seed: 2, loss: 0.05 }),
      "p2p_m_",
      options,
    );
    await using b = await ownedPeer(
      "hans",
      () => new LossySocket(network.socket(), { seed: 3, loss: 0.05 }),
      "p2p_m_",
      options,
    );
    const pathA = await randomFile(a.dir, 400_000);
    const pathC = await randomFile(c.dir, 300_000);
    const pathA2 = await randomFile(a.dir, 200_000);
    await Promise.all([
      transfer(a, b, pathA, "notes.txt"),
      transfer(c, b, pathC, "notes.txt"),
      transfer(a, b, pathA2, "notes.txt"),
    ]);
    assert.deepEqual(await listDir(b.dir), [
      "luke_notes.txt",
      "yoda_notes-1.txt",
      "yoda_notes.txt",
    ]);
    assert.equal(await sha256Of(`${b.dir}/luke_notes.txt`), await sha256Of(pathC));
    const yodas = [
      await sha256Of(`${b.dir}/yoda_notes.txt`),
      await sha256Of(`${b.dir}/yoda_notes-1.txt`),
    ];
    assert.deepEqual(yodas.sort(), [await sha256Of(pathA), await sha256Of(pathA2)].sort());
  },
});

Deno.test({
  name: "transfers in both directions at once on the same sockets both arrive intact",
  ignore: !CAN_USE_FILES,
  fn: async () => {
    await using peers = await udpPair();
    const { a, b } = peers;
    const pathA = await randomFile(a.dir, 1_500_000);
    const pathB = await randomFile(b.dir, 1_000_000);
    await Promise.all([transfer(a, b, pathA, "ab.bin"), transfer(b, a, pathB, "ba.bin")]);
    assert.equal(await sha256Of(`${b.dir}/yoda_ab.bin`), await sha256Of(pathA));
    assert.equal(await sha256Of(`${a.dir}/hans_ba.bin`), await sha256Of(pathB));
  },
});

/**
 * Starts an 8 MiB transfer a→b and resolves once some of it is in the receiver's temporary file
 * (written in blocks of about 1 MiB), long before the end: the engine is fast enough to move a
 * couple of MiB between two polls, so a fixed sleep could let the transfer finish first.
 */
async function startBigTransfer(a: Peer, b: Peer, signal?: AbortSignal) {
  const path = await randomFile(a.dir, 8 * 1024 * 1024);
  const [send, receive] = tickets(a, b, "big.bin");
  b.node.accept(receive);
  const sending = a.node.sendFile(send, path, signal ? { signal } : {});
  sending.catch(() => {});
  const partial = () => {
    for (const entry of Deno.readDirSync(b.dir)) {
      if (entry.name.endsWith(".part") && Deno.statSync(`${b.dir}/${entry.name}`).size > 0) {
        return true;
      }
    }
    return false;
  };
  await waitFor(() => b.failed.length > 0 || partial());
  return { sending, ticketId: send.id };
}

async function partialFiles(dir: string): Promise<string[]> {
  return (await listDir(dir)).filter((name) => name.startsWith("."));
}

Deno.test({
  name: "a sender killed mid-transfer leaves the receiver with peer-gone and no partial file",
  ignore: !CAN_USE_FILES,
  fn: async () => {
    await using peers = await tappedPair({ idleTimeoutMs: 300 });
    const { a, b, tapA } = peers;
    const { sending } = await startBigTransfer(a, b);
    tapA.dead = true;
    await waitFor(() => b.failed.length === 1);
    assert.equal(b.failed[0]!.reason, "peer-gone");
    assert.deepEqual(await listDir(b.dir), []);
    await assert.rejects(sending, { name: "TransferError", reason: "peer-gone" });
  },
});

Deno.test({
  name: "a receiver killed mid-transfer makes sendFile() reject with peer-gone",
  ignore: !CAN_USE_FILES,
  fn: async () => {
    await using peers = await tappedPair({ idleTimeoutMs: 300 });
    const { a, b, tapB } = peers;
    const { sending } = await startBigTransfer(a, b);
    tapB.dead = true;
    await assert.rejects(sending, { name: "TransferError", reason: "peer-gone" });
    await waitFor(() => b.failed.length === 1);
    assert.deepEqual(await partialFiles(b.dir), []);
  },
});

Deno.test({
  name: "a receiver that shuts down mid-transfer tells the sender at once (peer-gone)",
  ignore: !CAN_USE_FILES,
  fn: async () => {
    await using peers = await tappedPair();
    const { a, b } = peers;
    const { sending } = await startBigTransfer(a, b);
    const started = performance.now();
    await b.node.close();
    await assert.rejects(sending, { name: "TransferError", reason: "peer-gone" });
    assert.ok(performance.now() - started < 1000, "no need to wait for the idle timeout");
    assert.deepEqual(await listDir(b.dir), []);
  },
});

Deno.test({
  name: "sendFile() cancelled by its AbortSignal rejects with aborted and the receiver is told",
  ignore: !CAN_USE_FILES,
  fn: async () => {
    await using peers = await tappedPair();
    const { a, b } = peers;
    const controller = new AbortController();
    const { sending } = await startBigTransfer(a, b, controller.signal);
    controller.abort();
    await assert.rejects(sending, { name: "TransferError", reason: "aborted" });
    await waitFor(() => b.failed.length === 1);
    assert.equal(b.failed[0]!.reason, "aborted");
    assert.deepEqual(await listDir(b.dir), []);
  },
});

Deno.test({
  name: "sendFile() to a peer that never got its ticket rejects with timed-out",
  ignore: !CAN_USE_FILES,
  fn: async () => {
    await using peers = await memoryPair({}, { handshakeTimeoutMs: 200 });
    const { a, b } = peers;
    const path = await randomFile(a.dir, 100);
    const [send] = tickets(a, b, "notes.txt");
    await assert.rejects(a.node.sendFile(send, path), {
      name: "TransferError",
      reason: "timed-out",
    });
    assert.deepEqual(await listDir(b.dir), []);
  },
});

Deno.test({
  name: "a receiver rejects a file over its size limit and both sides see rejected",
  ignore: !CAN_USE_FILES,
  fn: async () => {
    const network = new MemoryNetwork();
    await using a = await ownedPeer("yoda", () => network.socket(), "p2p_a_");
    await using b = await ownedPeer("hans", () => network.socket(), "p2p_b_", {
      maxFileBytes: 1000,
    });
    const path = await randomFile(a.dir, 5000);
    await assert.rejects(transfer(a, b, path, "big.bin"), { reason: "rejected" });
    await waitFor(() => b.failed.length === 1);
    assert.equal(b.failed[0]!.reason, "rejected");
    assert.deepEqual(await listDir(b.dir), []);
  },
});

Deno.test({
  name: "sendFile() of a missing file rejects with disk-error and tells the receiver",
  ignore: !CAN_USE_FILES,
  fn: async () => {
    await using peers = await memoryPair();
    const { a, b } = peers;
    const [send, receive] = tickets(a, b, "ghost.txt");
    b.node.accept(receive);
    await assert.rejects(a.node.sendFile(send, `${a.dir}/missing.txt`), { reason: "disk-error" });
    await waitFor(() => b.failed.length === 1);
    assert.equal(b.failed[0]!.reason, "disk-error");
  },
});

Deno.test({
  name: "the receiver reports progress and the saved path, and names never escape the directory",
  ignore: !CAN_USE_FILES,
  fn: async () => {
    await using peers = await memoryPair();
    const { a, b } = peers;
    const path = await randomFile(a.dir, 1000);
    await transfer(a, b, path, "../../../etc/.passwd");
    assert.deepEqual(await listDir(b.dir), ["yoda_passwd"]);
    assert.equal(b.received[0]!.savedAs, `${b.dir}/yoda_passwd`);
  },
});

/** Two peers on real UDP sockets on 127.0.0.1, each tapped. */
async function tappedUdpPair(options: Partial<PeerNodeOptions> = {}) {
  const tapA = new TapSocket(new UdpSocket({ hostname: "127.0.0.1", port: 0 }));
  const tapB = new TapSocket(new UdpSocket({ hostname: "127.0.0.1", port: 0 }));
  const peers = await pairOf(
    () => ownedPeer("yoda", () => tapA, "p2p_a_", options),
    () => ownedPeer("hans", () => tapB, "p2p_b_", options),
  );
  return Object.assign(peers, { tapA, tapB });
}

Deno.test({
  name:
    "revoke() stops a receive in flight over real UDP: partial removed, sender told, replays dropped",
  ignore: !CAN_USE_FILES,
  fn: async () => {
    await using peers = await tappedUdpPair({ loopbackPayloadBytes: 1200 });
    const { a, b, tapA } = peers;
    const { sending, ticketId } = await startBigTransfer(a, b);
    // The sender goes quiet (its datagrams are lost), so the transfer cannot finish meanwhile.
    tapA.muted = true;
    assert.equal(b.node.revoke(ticketId), true);
    await assert.rejects(sending, (error: unknown) => {
      assert.ok(error instanceof TransferError);
      assert.equal(error.reason, "rejected");
      assert.equal(error.detail, `peer: ${REVOKED_DETAIL}`);
      assert.ok(isRevocation(error));
      return true;
    });
    await waitFor(() => b.failed.length === 1);
    assert.deepEqual(
      [b.failed[0]!.reason, b.failed[0]!.detail],
      ["rejected", REVOKED_DETAIL],
    );
    assert.deepEqual(await listDir(b.dir), []);
    // Whatever the sender said under that ticket is now refused as unknown, never written.
    const unknownBefore = b.node.stats.unknownTicket;
    const replays = tapA.sent.slice(0, 50);
    tapA.muted = false;
    for (const { data } of replays) await tapA.inner.send(data, b.node.localAddress);
    await waitFor(() => b.node.stats.unknownTicket - unknownBefore === replays.length);
    assert.deepEqual(await listDir(b.dir), []);
    assert.equal(b.node.revoke(ticketId), false, "nothing left to stop");
    assert.equal(b.received.length, 0);
  },
});

Deno.test({
  name:
    "a ticket revoked before the offer arrives is refused: offers dropped, no file, no re-accept",
  ignore: !CAN_USE_FILES,
  fn: async () => {
    await using peers = await udpPair({ handshakeTimeoutMs: 300 });
    const { a, b } = peers;
    const path = await randomFile(a.dir, 5000);
    const [send, receive] = tickets(a, b, "notes.txt");
    b.node.accept(receive);
    assert.equal(b.node.revoke(receive.id), true);
    assert.throws(() => b.node.accept(receive), /Cannot register ticket .*: it was revoked/);
    // The receiver's abort reaches the sender before it starts, and is dropped there as unknown.
    await waitFor(() => a.node.stats.unknownTicket === 1);
    await assert.rejects(a.node.sendFile(send, path), { reason: "timed-out" });
    assert.ok(b.node.stats.unknownTicket > 0, "the offers were dropped");
    assert.equal(b.node.stats.accepted, 0);
    assert.deepEqual(await listDir(b.dir), []);
    assert.equal(b.failed[0]?.reason, "rejected");
  },
});

Deno.test({
  name: "revoke() on the sending side aborts the send, and the receiver removes its partial file",
  ignore: !CAN_USE_FILES,
  fn: async () => {
    await using peers = await tappedPair();
    const { a, b } = peers;
    const { sending, ticketId } = await startBigTransfer(a, b);
    assert.equal(a.node.revoke(ticketId), true);
    await assert.rejects(sending, { name: "TransferError", reason: "aborted" });
    await waitFor(() => b.failed.length === 1);
    assert.equal(b.failed[0]!.reason, "aborted");
    assert.deepEqual(await listDir(b.dir), []);
  },
});

Deno.test({
  name: "an offer over --max-file-size is refused over real UDP and both sides are told the sizes",
  ignore: !CAN_USE_FILES,
  fn: async () => {
    await using peers = await udpPair({ maxFileBytes: 4096 });
    const { a, b } = peers;
    const path = await randomFile(a.dir, 5 * 1024);
    await assert.rejects(transfer(a, b, path, "big.iso"), (error: unknown) => {
      assert.ok(error instanceof TransferError);
      assert.equal(error.reason, "rejected");
      assert.equal(error.detail, "peer: 5.0 KiB is over the 4.0 KiB limit");
      return true;
    });
    await waitFor(() => b.failed.length === 1);
    assert.deepEqual(b.failed[0], {
      ticketId: b.failed[0]!.ticketId,
      peer: "yoda",
      fileName: "big.iso",
      direction: "receive",
      reason: "rejected",
      detail: "5.0 KiB is over the 4.0 KiB limit",
      refused: "too-large",
    });
    assert.deepEqual(await listDir(b.dir), []);
    // Exactly at the limit is fine.
    const fits = await randomFile(a.dir, 4096);
    await transfer(a, b, fits, "fits.bin");
    assert.equal(await sha256Of(`${b.dir}/yoda_fits.bin`), await sha256Of(fits));
  },
});

Deno.test({
  name: "an offer larger than the download directory's free space is refused, both sides told",
  ignore: !CAN_USE_FILES,
  fn: async () => {
    const asked: string[] = [];
    await using peers = await udpPair({
      freeSpace: (dir) => {
        asked.push(dir);
        return Promise.resolve(3 * 1024 * 1024);
      },
    });
    const { a, b } = peers;
    const path = await randomFile(a.dir, 3 * 1024 * 1024 + 1);
    await assert.rejects(transfer(a, b, path, "big.iso"), {
      reason: "rejected",
      detail: "peer: 3.0 MiB does not fit in the 3.0 MiB free",
    });
    await waitFor(() => b.failed.length === 1);
    assert.equal(b.failed[0]!.refused, "no-space");
    assert.equal(b.failed[0]!.detail, "3.0 MiB does not fit in the 3.0 MiB free");
    assert.deepEqual(await listDir(b.dir), []);
    assert.ok(asked.includes(b.dir));
    await transfer(a, b, await randomFile(a.dir, 1000), "small.txt");
    assert.ok((await listDir(b.dir)).includes("yoda_small.txt"));
  },
});

Deno.test({
  name: "a sender that sends more than it offered gets nothing beyond the offered size written",
  ignore: !CAN_USE_FILES,
  fn: async () => {
    await using peers = await udpPair();
    const { a, b } = peers;
    const [send, receive] = tickets(a, b, "exact.bin");
    b.node.accept(receive);
    // A modified sender with a good ticket: it speaks the wire format itself.
    const rogue = new UdpSocket({ hostname: "127.0.0.1", port: 0 });
    try {
      const key = importKey(send.key);
      const id = ticketIdBytes(send.id);
      let packetNumber = 0;
      const say = (message: Message) =>
        rogue.send(
          encodePacket(
            key,
            { direction: Direction.FORWARD, id, packetNumber: packetNumber++ },
            message,
          ),
          b.node.localAddress,
        );
      const bytes = crypto.getRandomValues(new Uint8Array(100));
      await say({ type: PacketType.OFFER, size: 100, chunkSize: 64, name: "exact.bin" });
      await rogue.receive(); // the ACCEPT: the receiver is writing now
      await say({ type: PacketType.DATA, chunk: 0, payload: bytes.subarray(0, 64) });
      await say({ type: PacketType.DATA, chunk: 1, payload: new Uint8Array(64).fill(7) }); // too long
      await say({ type: PacketType.DATA, chunk: 2, payload: new Uint8Array(64).fill(9) }); // beyond
      await say({ type: PacketType.DATA, chunk: 1, payload: bytes.subarray(64) });
      await say({ type: PacketType.DATA, chunk: 3, payload: new Uint8Array(36).fill(9) }); // beyond
      const digest = new Uint8Array(createHash("sha256").update(bytes).digest());
      await say({ type: PacketType.FIN, sha256: digest });
      await waitFor(() => b.received.length === 1);
      assert.deepEqual(await Deno.readFile(`${b.dir}/yoda_exact.bin`), bytes);
    } finally {
      rogue.close();
    }
  },
});
