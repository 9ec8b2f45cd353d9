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
import type { DatagramSocket, PeerNodeOptions } from "../../lib/p2p/mod.ts";
import { MAX_TEXT_CHARS } from "../../lib/shared/commands.ts";
import { splitUtf8 } from "../../lib/p2p/chat_session.ts";
import { FreezableSocket, ManualClock } from "../../testing/p2p_fixture.ts";

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

function chatPeer(
  name: string,
  socket: DatagramSocket,
  options: Partial<PeerNodeOptions> = {},
): ChatPeer {
  const peer: ChatPeer = { name, messages: [], closed: [], node: undefined! };
  peer.node = new PeerNode(socket, {
    ...FAST,
    ...options,
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
  options: Partial<PeerNodeOptions> = {},
): ChatPeers {
  const [socketA, socketB] = sockets(new MemoryNetwork());
  const a = chatPeer("yoda", socketA, options);
  const b = chatPeer("hans", socketB, options);
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
  assert.deepEqual(b.messages.map((m) => m.text), ["x".repeat(MAX_PRIVATE_TEXT_BYTES)]);
});

Deno.test("MAX_PRIVATE_TEXT_BYTES holds any message of the longest length, in any script", () => {
  // Four bytes is the most one code point takes in UTF-8.
  assert.ok(MAX_PRIVATE_TEXT_BYTES >= 4 * MAX_TEXT_CHARS, String(MAX_PRIVATE_TEXT_BYTES));
});

Deno.test("sendPrivate() carries the id the sender chose, or a fresh random one", async () => {
  await using peers = chatPeers();
  const { a, b } = peers;
  const id = openChat(a, b);
  await a.node.sendPrivate(id, "with an id", { id: "0123456789abcdef" });
  await a.node.sendPrivate(id, "without");
  await a.node.sendPrivate(id, "without again");
  assert.equal(b.messages[0]!.id, "0123456789abcdef");
  assert.match(b.messages[1]!.id, /^[0-9a-f]{16}$/);
  assert.notEqual(b.messages[1]!.id, b.messages[2]!.id);
  for (const bad of ["", "0123456789ABCDEF", "0123456789abcde", "0123456789abcdefg"]) {
    await assert.rejects(a.node.sendPrivate(id, "bad id", { id: bad }), TypeError, bad);
  }
  assert.equal(b.messages.length, 3);
});

Deno.test("sendPrivate() splits a long text into datagrams and delivers it whole, in order, once", async () => {
  const faults = { loss: 0.3, duplicate: 0.3, reorder: 0.5 };
  await using peers = chatPeers((network) => [
    new LossySocket(network.socket(), { seed: 11, ...faults }),
    new LossySocket(network.socket(), { seed: 12, ...faults }),
  ]);
  const { a, b } = peers;
  const id = openChat(a, b);
  const texts = [
    "é".repeat(700), // 1,400 bytes: two datagrams
    "short",
    "😀".repeat(MAX_TEXT_CHARS), // 4,000 bytes: four datagrams
    "日本語".repeat(333) + "x", // 2,998 bytes: three, cut between characters
  ];
  for (const [i, text] of texts.entries()) {
    await a.node.sendPrivate(id, text, { id: `${i}`.padStart(16, "0") });
  }
  assert.deepEqual(b.messages.map((m) => m.text), texts);
  assert.deepEqual(b.messages.map((m) => m.id), texts.map((_, i) => `${i}`.padStart(16, "0")));
});

Deno.test("a message given up on still arrives late from a frozen peer, with its id, once", async () => {
  const clock = new ManualClock();
  let frozen: FreezableSocket | undefined;
  await using peers = chatPeers((network) => {
    frozen = new FreezableSocket(network.socket());
    return [network.socket(), frozen];
  }, { clock, messageRetryMs: 250, messageGiveUpMs: 2_500 });
  const { a, b } = peers;
  const id = openChat(a, b);
  frozen!.freeze();
  const sent = a.node.sendPrivate(id, "are you there?", { id: "00000000000000aa" });
  const outcome = sent.then(() => "delivered", (error) => error);
  await clock.advance(2_500);
  assert.ok(await outcome instanceof PeerUnreachableError);
  assert.equal(b.messages.length, 0);
  frozen!.thaw();
  await waitFor(() => b.messages.length > 0);
  await clock.advance(1_000);
  assert.deepEqual(b.messages.map((m) => [m.id, m.text]), [["00000000000000aa", "are you there?"]]);
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

Deno.test("splitUtf8() cuts only between characters and never past the limit", () => {
  const bytes = (text: string) => new TextEncoder().encode(text).length;
  for (const text of ["", "abc", "é".repeat(700), "😀".repeat(1000), "a日本😀é".repeat(300)]) {
    for (const max of [4, 5, 7, 1146]) {
      const pieces = splitUtf8(text, max);
      assert.equal(pieces.join(""), text);
      assert.ok(pieces.every((piece) => bytes(piece) <= max));
      assert.ok(pieces.every((piece) => !piece.includes("\ufffd")), "no character was cut");
      assert.ok(pieces.slice(0, -1).every((piece) => bytes(piece) > max - 4), "pieces are full");
    }
  }
  assert.deepEqual(splitUtf8("", 1146), [""]);
  assert.throws(() => splitUtf8("x", 3), RangeError);
});
