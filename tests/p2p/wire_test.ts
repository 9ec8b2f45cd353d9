/** The wire format of lib/p2p/wire.ts: packets, their authentication and the replay window. */
import assert from "node:assert/strict";
import {
  decodeBody,
  Direction,
  encodePacket,
  importKey,
  MAX_MSG_PARTS,
  MAX_MSG_TEXT_BYTES,
  type Message,
  OVERHEAD_BYTES,
  PacketType,
  parseHeader,
  ReplayWindow,
  ticketIdBytes,
  verifyPacket,
} from "../../lib/p2p/wire.ts";

/** The id of the ticket the packets here belong to. */
const TICKET_ID = "0123456789abcdef0123456789abcdef";

const KEY = importKey(btoa("s".repeat(32)));
const OTHER_KEY = importKey(btoa("t".repeat(32)));
const ID = ticketIdBytes(TICKET_ID);

const MESSAGES: Message[] = [
  { type: PacketType.OFFER, size: 2 ** 40 + 5, chunkSize: 1200, name: "naïve notes.txt" },
  { type: PacketType.ACCEPT, window: 4096 },
  { type: PacketType.DATA, chunk: 7, payload: new Uint8Array([1, 2, 3]) },
  { type: PacketType.DATA, chunk: 0, payload: new Uint8Array(0) },
  {
    type: PacketType.ACK,
    cumulative: 9,
    echoPn: 77,
    ackDelayUs: 500,
    bitmap: new Uint8Array([0b101]),
  },
  { type: PacketType.FIN, sha256: new Uint8Array(32).fill(9) },
  { type: PacketType.DONE },
  { type: PacketType.ABORT, reason: "disk-error", detail: "No space left on device" },
  {
    type: PacketType.MSG,
    seq: 3,
    id: "00ff10aa7b3c9d0e",
    part: 0,
    parts: 1,
    text: "hello there ✨",
  },
  { type: PacketType.MSG, seq: 4, id: "ffffffffffffffff", part: 3, parts: 4, text: "" },
  { type: PacketType.MSG_ACK, seq: 3 },
  { type: PacketType.CLOSE, seq: 4, reason: "peer-stopped" },
];

for (const message of MESSAGES) {
  Deno.test(`encodePacket() and decodeBody() round-trip a type ${message.type} message`, () => {
    const packet = encodePacket(
      KEY,
      { direction: Direction.BACKWARD, id: ID, packetNumber: 42 },
      message,
    );
    assert.ok(verifyPacket(KEY, packet));
    assert.deepEqual(parseHeader(packet), {
      type: message.type,
      direction: Direction.BACKWARD,
      ticketId: TICKET_ID,
      packetNumber: 42,
    });
    assert.deepEqual(decodeBody(message.type, packet), message);
  });
}

Deno.test("verifyPacket() rejects a wrong key, any flipped bit and a truncated datagram", () => {
  const packet = encodePacket(KEY, { direction: 0, id: ID, packetNumber: 1 }, MESSAGES[2]!);
  assert.equal(verifyPacket(OTHER_KEY, packet), false);
  for (let i = 0; i < packet.length; i++) {
    const bad = packet.slice();
    bad[i]! ^= 0x10;
    assert.equal(verifyPacket(KEY, bad), false, `flipped byte ${i}`);
  }
  assert.equal(verifyPacket(KEY, packet.subarray(0, 30)), false);
});

Deno.test("parseHeader() rejects junk, a wrong magic, a wrong version and unknown types", () => {
  const packet = encodePacket(KEY, { direction: 0, id: ID, packetNumber: 1 }, MESSAGES[1]!);
  assert.equal(parseHeader(new Uint8Array(10)), null);
  for (const [at, value] of [[0, 0x55], [1, 1], [1, 3], [2, 0], [2, 99], [3, 2]]) {
    const bad = packet.slice();
    bad[at!] = value!;
    assert.equal(parseHeader(bad), null);
  }
});

Deno.test("decodeBody() rejects malformed bodies instead of throwing", () => {
  const cases: [number, Message][] = [
    [PacketType.CLOSE, { type: PacketType.MSG_ACK, seq: 1 }],
    [PacketType.FIN, { type: PacketType.MSG_ACK, seq: 1 }],
    [PacketType.DONE, { type: PacketType.MSG_ACK, seq: 1 }],
    [PacketType.OFFER, { type: PacketType.MSG_ACK, seq: 1 }],
  ];
  for (const [type, message] of cases) {
    const packet = encodePacket(KEY, { direction: 0, id: ID, packetNumber: 1 }, message);
    assert.equal(decodeBody(type, packet), null);
  }
  const badUtf8 = encodePacket(KEY, { direction: 0, id: ID, packetNumber: 1 }, {
    type: PacketType.DATA,
    chunk: 0,
    payload: new Uint8Array([0, 0, 0, 1, 0xff, 0xfe]),
  });
  assert.equal(decodeBody(PacketType.MSG, badUtf8), null);
});

Deno.test("a MSG carrying the most text fits a 1,200-byte datagram", () => {
  const packet = encodePacket(KEY, { direction: 0, id: ID, packetNumber: 1 }, {
    type: PacketType.MSG,
    seq: 1,
    id: "0000000000000001",
    part: 0,
    parts: 1,
    text: "x".repeat(MAX_MSG_TEXT_BYTES),
  });
  assert.equal(packet.length, 1200);
  assert.equal(OVERHEAD_BYTES + 14 + MAX_MSG_TEXT_BYTES, 1200);
});

Deno.test("decodeBody() rejects a MSG with a bad part, part count or too much text", () => {
  const msg = (part: number, parts: number, text = "hi") =>
    encodePacket(KEY, { direction: 0, id: ID, packetNumber: 1 }, {
      type: PacketType.MSG,
      seq: 1,
      id: "0000000000000001",
      part,
      parts,
      text,
    });
  assert.notEqual(decodeBody(PacketType.MSG, msg(MAX_MSG_PARTS - 1, MAX_MSG_PARTS)), null);
  assert.equal(decodeBody(PacketType.MSG, msg(0, 0)), null);
  assert.equal(decodeBody(PacketType.MSG, msg(2, 2)), null);
  assert.equal(decodeBody(PacketType.MSG, msg(0, MAX_MSG_PARTS + 1)), null);
  assert.equal(decodeBody(PacketType.MSG, msg(0, 1, "x".repeat(MAX_MSG_TEXT_BYTES + 1))), null);
  const short = encodePacket(KEY, { direction: 0, id: ID, packetNumber: 1 }, {
    type: PacketType.MSG_ACK,
    seq: 1,
  });
  assert.equal(decodeBody(PacketType.MSG, short), null, "no room for the id");
});

Deno.test("ReplayWindow accepts each packet number once and refuses stale ones", () => {
  const window = new ReplayWindow(64);
  assert.ok(window.accept(5));
  assert.equal(window.accept(5), false);
  assert.ok(window.accept(3), "a late but fresh packet");
  assert.ok(window.accept(100));
  assert.equal(window.accept(36), false, "older than the window");
  assert.ok(window.accept(37));
  assert.equal(window.accept(37), false);
  assert.ok(window.accept(99));
  assert.equal(window.accept(100), false);
});
