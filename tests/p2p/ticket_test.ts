/** The tickets of lib/p2p/ticket.ts: what issueTickets() issues and what parseTicket() accepts. */
import assert from "node:assert/strict";
import { issueTickets, parseTicket, type Ticket } from "../../lib/p2p/ticket.ts";

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
