/** Private messaging between two PeerNodes: exactly-once delivery, limits and closing a chat. */
import assert from "node:assert/strict";
import {
  type ChatClosed,
  issueTickets,
  LossySocket,
  MAX_PRIVATE_TEXT_BYTES,
  MemoryNetwork,
  PeerNode,
  PeerUnreachableError,
  type PrivateMessage,
  UdpSocket,
} from "../../lib/p2p/mod.ts";
import type { DatagramSocket } from "../../lib/p2p/mod.ts";

const FAST = {
  messageRetryMs: 30,
  messageGiveUpMs: 300,
  lingerMs: 50,
  downloadDir: "/nonexistent",
};

interface ChatPeer {
  name: string;
  node: PeerNode;
  messages: PrivateMessage[];
  closed: ChatClosed[];
}

function chatPeer(name: string, socket: DatagramSocket): ChatPeer {
  const peer: ChatPeer = { name, messages: [], closed: [], node: undefined! };
  peer.node = new PeerNode(socket, {
    ...FAST,
    events: {
      onPrivateMessage: (m) => peer.messages.push(m),
      onChatClosed: (c) => peer.closed.push(c),
    },
  });
  return peer;
}

function openChat(a: ChatPeer, b: ChatPeer): string {
  const [forA, forB] = issueTickets({
    kind: "chat",
    from: a.name,
    to: b.name,
    fromAddress: a.node.localAddress,
    toAddress: b.node.localAddress,
  });
  a.node.accept(forA);
  b.node.accept(forB);
  return forA.id;
}

async function waitFor(condition: () => boolean, ms = 3000): Promise<void> {
  const deadline = performance.now() + ms;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error("Timed out waiting for a condition");
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Two chat peers, yoda and hans; `await using` closes both nodes at the end. */
interface ChatPeers extends AsyncDisposable {
  a: ChatPeer;
  b: ChatPeer;
}

/** Two chat peers, yoda and hans, on sockets from `sockets` (by default an in-memory network). */
function chatPeers(
  sockets: (network: MemoryNetwork) => [DatagramSocket, DatagramSocket] = (network) => [
    network.socket(),
    network.socket(),
  ],
): ChatPeers {
  const [socketA, socketB] = sockets(new MemoryNetwork());
  const a = chatPeer("yoda", socketA);
  const b = chatPeer("hans", socketB);
  return {
    a,
    b,
    async [Symbol.asyncDispose]() {
      try {
        await a.node.close();
      } finally {
        await b.node.close();
      }
    },
  };
}

Deno.test("sendPrivate() delivers each message exactly once at 30% loss with duplication", async () => {
  const faults = { loss: 0.3, duplicate: 0.3, reorder: 0.2 };
  await using peers = chatPeers((network) => [
    new LossySocket(network.socket(), { seed: 5, ...faults }),
    new LossySocket(network.socket(), { seed: 6, ...faults }),
  ]);
  const { a, b } = peers;
  const id = openChat(a, b);
  const sent: string[] = [];
  for (let i = 0; i < 30; i++) {
    const text = `message ${i}`;
    sent.push(text);
    await a.node.sendPrivate(id, text);
  }
  await b.node.sendPrivate(id, "and back");
  assert.deepEqual(b.messages.map((m) => m.text), sent);
  assert.ok(b.messages.every((m) => m.from === "yoda" && m.ticketId === id));
  assert.deepEqual(a.messages.map((m) => [m.from, m.text]), [["hans", "and back"]]);
});

Deno.test("sendPrivate() works over real UDP on 127.0.0.1, concurrently in both directions", async () => {
  await using peers = chatPeers(() => [
    new UdpSocket({ hostname: "127.0.0.1", port: 0 }),
    new UdpSocket({ hostname: "127.0.0.1", port: 0 }),
  ]);
  const { a, b } = peers;
  const id = openChat(a, b);
  await Promise.all([
    ...Array.from({ length: 10 }, (_, i) => a.node.sendPrivate(id, `a${i}`)),
    ...Array.from({ length: 10 }, (_, i) => b.node.sendPrivate(id, `b${i}`)),
  ]);
  assert.deepEqual(
    b.messages.map((m) => m.text).sort(),
    Array.from({ length: 10 }, (_, i) => `a${i}`),
  );
  assert.deepEqual(
    a.messages.map((m) => m.text).sort(),
    Array.from({ length: 10 }, (_, i) => `b${i}`),
  );
});

Deno.test("sendPrivate() to an unreachable peer rejects with PeerUnreachableError", async () => {
  await using peers = chatPeers();
  const { a, b } = peers;
  // The peer never got (or already lost) its ticket: it drops everything silently.
  const [forA] = issueTickets({
    kind: "chat",
    from: a.name,
    to: b.name,
    fromAddress: a.node.localAddress,
    toAddress: b.node.localAddress,
  });
  a.node.accept(forA);
  const id = forA.id;
  const started = performance.now();
  await assert.rejects(a.node.sendPrivate(id, "anyone there?"), PeerUnreachableError);
  assert.ok(performance.now() - started >= 250, "it retried for the give-up time first");
});

Deno.test("sendPrivate() without a session rejects, and an oversized text is a RangeError", async () => {
  await using peers = chatPeers();
  const { a, b } = peers;
  await assert.rejects(a.node.sendPrivate("00".repeat(16), "hi"), TypeError);
  const id = openChat(a, b);
  await assert.rejects(
    a.node.sendPrivate(id, "x".repeat(MAX_PRIVATE_TEXT_BYTES + 1)),
    RangeError,
  );
  await a.node.sendPrivate(id, "x".repeat(MAX_PRIVATE_TEXT_BYTES));
  assert.equal(b.messages.length, 1);
});

Deno.test("closeChat() tells the peer with peer-stopped and ends the session on both sides", async () => {
  await using peers = chatPeers((network) => [
    new LossySocket(network.socket(), { seed: 8, loss: 0.2 }),
    new LossySocket(network.socket(), { seed: 9, loss: 0.2 }),
  ]);
  const { a, b } = peers;
  const id = openChat(a, b);
  await a.node.sendPrivate(id, "bye");
  await b.node.closeChat(id);
  await waitFor(() => a.closed.length === 1);
  assert.deepEqual(a.closed, [{ ticketId: id, peer: "hans", reason: "peer-stopped" }]);
  assert.equal(a.node.hasChat(id), false);
  assert.equal(b.node.hasChat(id), false);
  assert.deepEqual(b.closed, [], "the side that closed is not told about itself");
  await assert.rejects(a.node.sendPrivate(id, "still there?"), PeerUnreachableError);
});

Deno.test("close() of a node tells its chat peers with peer-gone", async () => {
  await using peers = chatPeers();
  const { a, b } = peers;
  const id = openChat(a, b);
  await b.node.close();
  await waitFor(() => a.closed.length === 1);
  assert.deepEqual(a.closed, [{ ticketId: id, peer: "hans", reason: "peer-gone" }]);
});

Deno.test("closeChat() without notifying leaves the peer untold", async () => {
  await using peers = chatPeers();
  const { a, b } = peers;
  const id = openChat(a, b);
  await a.node.closeChat(id, { notifyPeer: false });
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.deepEqual(b.closed, []);
  assert.equal(a.node.hasChat(id), false);
});
