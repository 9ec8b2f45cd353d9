import assert from "node:assert/strict";
import { issueTickets, parseTicket, type Ticket } from "../../lib/p2p/ticket.ts";
import {
  decodeBody,
  Direction,
  encodePacket,
  importKey,
  type Message,
  PacketType,
  parseHeader,
  ReplayWindow,
  ticketIdBytes,
  verifyPacket,
} from "../../lib/p2p/wire.ts";
import {
  moveIntoPlace,
  numberedName,
  receivedFileName,
  safeBaseName,
} from "../../lib/p2p/safe_name.ts";

const CAN_USE_FILES = Deno.permissions.querySync({ name: "read" }).state === "granted" &&
  Deno.permissions.querySync({ name: "write" }).state === "granted";

const VALID: Ticket = {
  id: "0123456789abcdef0123456789abcdef",
  key: btoa("k".repeat(32)),
  kind: "file",
  role: "receiver",
  self: "hans",
  peer: "yoda",
  address: { hostname: "127.0.0.1", port: 900 },
  fileName: "notes.txt",
};

Deno.test("parseTicket() accepts a well-formed ticket and drops extra fields", () => {
  assert.deepEqual(parseTicket({ ...VALID, extra: 1 }), VALID);
});

Deno.test("parseTicket() accepts what issueTickets() issues, for both sides", () => {
  const pair = issueTickets({
    kind: "chat",
    from: "yoda",
    to: "hans",
    fromAddress: { hostname: "10.0.0.1", port: 901 },
    toAddress: { hostname: "10.0.0.2", port: 902 },
  });
  for (const ticket of pair) {
    assert.deepEqual(parseTicket(JSON.parse(JSON.stringify(ticket))), ticket);
  }
  assert.equal(pair[0].role, "initiator");
  assert.equal(pair[1].role, "responder");
  assert.deepEqual(pair[0].address, { hostname: "10.0.0.2", port: 902 });
  assert.equal(pair[0].id, pair[1].id);
});

const MALFORMED: [string, unknown][] = [
  ["null", null],
  ["an array", []],
  ["a short id", { ...VALID, id: "abc" }],
  ["an uppercase id", { ...VALID, id: VALID.id.toUpperCase() }],
  ["a short key", { ...VALID, key: btoa("short") }],
  ["a non-base64 key", { ...VALID, key: "!".repeat(44) }],
  ["an unknown kind", { ...VALID, kind: "video" }],
  ["a chat role on a file ticket", { ...VALID, role: "initiator" }],
  ["an empty peer", { ...VALID, peer: "" }],
  ["a missing address", { ...VALID, address: undefined }],
  ["port 0", { ...VALID, address: { hostname: "127.0.0.1", port: 0 } }],
  ["a fractional port", { ...VALID, address: { hostname: "127.0.0.1", port: 1.5 } }],
  ["a numeric fileName", { ...VALID, fileName: 7 }],
];

for (const [label, value] of MALFORMED) {
  Deno.test(`parseTicket() rejects ${label} with a TypeError`, () => {
    assert.throws(() => parseTicket(value), TypeError);
  });
}

const KEY = importKey(btoa("s".repeat(32)));
const OTHER_KEY = importKey(btoa("t".repeat(32)));
const ID = ticketIdBytes(VALID.id);

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
  { type: PacketType.MSG, seq: 3, text: "hello there ✨" },
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
      ticketId: VALID.id,
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
  for (const [at, value] of [[0, 0x55], [1, 2], [2, 0], [2, 99], [3, 2]]) {
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

const SAFE_NAMES: [string, string][] = [
  ["notes.txt", "notes.txt"],
  ["../../etc/passwd", "passwd"],
  ["..\\..\\Windows\\system.ini", "system.ini"],
  ["/absolute/path/report.pdf", "report.pdf"],
  ["..", "file"],
  [".", "file"],
  ["", "file"],
  ["dir/", "file"],
  [".bashrc", "bashrc"],
  ["...hidden", "hidden"],
  ["bad\u0000name\n.txt", "bad_name_.txt"],
  ['a<b>c:d|e?f*g"h', "a_b_c_d_e_f_g_h"],
  ["  spaced  ", "spaced"],
  ["ünïcödé ✨.md", "ünïcödé ✨.md"],
];

for (const [input, expected] of SAFE_NAMES) {
  Deno.test(`safeBaseName() reduces ${JSON.stringify(input)} to ${JSON.stringify(expected)}`, () => {
    assert.equal(safeBaseName(input), expected);
  });
}

Deno.test("safeBaseName() shortens very long names and keeps the extension", () => {
  const name = safeBaseName("x".repeat(1000) + ".txt");
  assert.ok(name.length <= 200);
  assert.ok(name.endsWith(".txt"));
});

Deno.test("receivedFileName() prefixes the sender and sanitises both parts", () => {
  assert.equal(receivedFileName("yoda", "notes.txt"), "yoda_notes.txt");
  assert.equal(receivedFileName("../yoda", "../../notes.txt"), "yoda_notes.txt");
});

const NUMBERED: [string, number, string][] = [
  ["yoda_notes.txt", 0, "yoda_notes.txt"],
  ["yoda_notes.txt", 1, "yoda_notes-1.txt"],
  ["yoda_notes.txt", 2, "yoda_notes-2.txt"],
  ["yoda_README", 3, "yoda_README-3"],
  ["yoda_a.tar.gz", 1, "yoda_a.tar-1.gz"],
];

for (const [name, n, expected] of NUMBERED) {
  Deno.test(`numberedName() makes candidate ${n} of ${name} ${expected}`, () => {
    assert.equal(numberedName(name, n), expected);
  });
}

Deno.test({
  name: "moveIntoPlace() never overwrites and picks the next free numbered name",
  ignore: !CAN_USE_FILES,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "p2p_names_" });
    try {
      await Deno.writeTextFile(`${dir}/yoda_notes.txt`, "original");
      await Deno.writeTextFile(`${dir}/yoda_notes-1.txt`, "first copy");
      await Deno.writeTextFile(`${dir}/.tmp`, "new");
      const saved = await moveIntoPlace(`${dir}/.tmp`, dir, "yoda_notes.txt");
      assert.equal(saved, `${dir}/yoda_notes-2.txt`);
      assert.equal(await Deno.readTextFile(`${dir}/yoda_notes.txt`), "original");
      assert.equal(await Deno.readTextFile(`${dir}/yoda_notes-1.txt`), "first copy");
      assert.equal(await Deno.readTextFile(saved), "new");
      await assert.rejects(Deno.stat(`${dir}/.tmp`));
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
