/**
 * Tickets: what the server hands both peers of a file transfer or a private chat so that they
 * can talk directly over UDP. A ticket names the transfer or session, carries its secret key and
 * tells each peer where the other one is.
 *
 * @module
 */

/** A UDP address of a peer, as the server saw its IP and its registered UDP port. */
export interface PeerAddress {
  hostname: string;
  port: number;
}

/** What a ticket is for: one file transfer or one private chat session. */
export type TicketKind = "file" | "chat";

/** My part in a ticket: file tickets use sender/receiver, chat tickets initiator/responder. */
export type TicketRole = "sender" | "receiver" | "initiator" | "responder";

/** One brokered transfer or chat session, as one of its two peers sees it. */
export interface Ticket {
  /** 32 lowercase hex characters (16 random bytes), chosen by the server, unique. */
  id: string;
  /** Base64 of 32 random bytes, chosen by the server; authenticates every datagram. */
  key: string;
  kind: TicketKind;
  role: TicketRole;
  /** My username. */
  self: string;
  /** The other user's username. */
  peer: string;
  /** The OTHER peer's UDP address. */
  address: PeerAddress;
  /** File tickets: the name the sender gave (only its base name is ever used). */
  fileName?: string;
}

const TICKET_ID_PATTERN = /^[0-9a-f]{32}$/;
const BASE64_PATTERN = /^[A-Za-z0-9+/]+={0,2}$/;
const MAX_NAME_LENGTH = 4096;

/** Length of a ticket key in bytes, once decoded from base64. */
export const TICKET_KEY_BYTES = 32;

/**
 * Checks a value that arrived as JSON from the server and returns it as a {@linkcode Ticket}.
 * Unknown extra properties are dropped. Throws a `TypeError` naming the first bad field.
 */
export function parseTicket(value: unknown): Ticket {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new TypeError("Cannot parse ticket: not an object");
  }
  const v = value as Record<string, unknown>;
  const id = v.id;
  if (typeof id !== "string" || !TICKET_ID_PATTERN.test(id)) {
    throw new TypeError("Cannot parse ticket: id must be 32 lowercase hex characters");
  }
  const key = v.key;
  if (
    typeof key !== "string" || !BASE64_PATTERN.test(key) || decodedLength(key) !== TICKET_KEY_BYTES
  ) {
    throw new TypeError(`Cannot parse ticket ${id}: key must be base64 of 32 bytes`);
  }
  const kind = v.kind;
  if (kind !== "file" && kind !== "chat") {
    throw new TypeError(`Cannot parse ticket ${id}: kind must be "file" or "chat"`);
  }
  const role = v.role;
  const roles = kind === "file" ? ["sender", "receiver"] : ["initiator", "responder"];
  if (typeof role !== "string" || !roles.includes(role)) {
    throw new TypeError(
      `Cannot parse ticket ${id}: role of a ${kind} ticket must be ${roles.join(" or ")}`,
    );
  }
  const self = checkName(v.self, "self", id);
  const peer = checkName(v.peer, "peer", id);
  const address = v.address;
  if (typeof address !== "object" || address === null) {
    throw new TypeError(`Cannot parse ticket ${id}: address must be an object`);
  }
  const { hostname, port } = address as Record<string, unknown>;
  if (typeof hostname !== "string" || hostname.length === 0 || hostname.length > 255) {
    throw new TypeError(`Cannot parse ticket ${id}: address.hostname must be a non-empty string`);
  }
  if (typeof port !== "number" || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new TypeError(`Cannot parse ticket ${id}: address.port must be an integer 1-65535`);
  }
  const ticket: Ticket = {
    id,
    key,
    kind,
    role: role as TicketRole,
    self,
    peer,
    address: { hostname, port },
  };
  if (v.fileName !== undefined) {
    if (typeof v.fileName !== "string" || v.fileName.length > MAX_NAME_LENGTH) {
      throw new TypeError(`Cannot parse ticket ${id}: fileName must be a string`);
    }
    ticket.fileName = v.fileName;
  }
  return ticket;
}

function checkName(value: unknown, field: string, id: string): string {
  if (typeof value !== "string" || value.length === 0 || value.length > 256) {
    throw new TypeError(`Cannot parse ticket ${id}: ${field} must be a non-empty string`);
  }
  return value;
}

function decodedLength(b64: string): number {
  if (b64.length % 4 !== 0) return -1;
  const padding = b64.endsWith("==") ? 2 : b64.endsWith("=") ? 1 : 0;
  return (b64.length / 4) * 3 - padding;
}

/** What the server knows when it brokers a transfer or a chat between two users. */
export interface TicketRequest {
  kind: TicketKind;
  /** The user who asked: the file sender or the chat initiator. */
  from: string;
  /** The other user: the file receiver or the chat responder. */
  to: string;
  /** `from`'s UDP address as the server sees it. */
  fromAddress: PeerAddress;
  /** `to`'s UDP address as the server sees it. */
  toAddress: PeerAddress;
  /** File tickets: the name the sender gave. */
  fileName?: string;
}

/** The secret part of a ticket pair: its id and its key. */
export interface TicketSecret {
  id: string;
  key: string;
}

/** A fresh random ticket id and key. */
export function newTicketSecret(): TicketSecret {
  const idBytes = crypto.getRandomValues(new Uint8Array(16));
  const id = Array.from(idBytes, (b) => b.toString(16).padStart(2, "0")).join("");
  const key = btoa(
    String.fromCharCode(...crypto.getRandomValues(new Uint8Array(TICKET_KEY_BYTES))),
  );
  return { id, key };
}

/**
 * Issues the two tickets of one transfer or chat (for the server's broker): a fresh random id
 * and key, and for each side the other side's address. Returns `[forFrom, forTo]`.
 */
export function issueTickets(request: TicketRequest): [Ticket, Ticket] {
  return pairedTickets(request, newTicketSecret());
}

/**
 * The two tickets of one transfer or chat with the id and key of `secret`, chosen before (a
 * server cluster picks them when it proposes, and pairs them with the addresses it decides).
 * Returns `[forFrom, forTo]`.
 */
export function pairedTickets(request: TicketRequest, secret: TicketSecret): [Ticket, Ticket] {
  const { id, key } = secret;
  const file = request.kind === "file";
  const extra = request.fileName === undefined ? {} : { fileName: request.fileName };
  return [
    {
      id,
      key,
      kind: request.kind,
      role: file ? "sender" : "initiator",
      self: request.from,
      peer: request.to,
      address: { ...request.toAddress },
      ...extra,
    },
    {
      id,
      key,
      kind: request.kind,
      role: file ? "receiver" : "responder",
      self: request.to,
      peer: request.from,
      address: { ...request.fromAddress },
      ...extra,
    },
  ];
}
