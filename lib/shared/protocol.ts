/**
 * lib/shared/ holds what both sides of the client–server link read: framing, this protocol, the
 * command table, timestamps, errors, transports, the clock and the logger interface.
 *
 * This module is the wire protocol: every frame is one JSON object on one line (see
 * docs/PROTOCOL.md). It turns frame text into typed messages and back, with each event's and
 * reply's `data` typed and checked per kind; it never touches a socket.
 */
import { parseTicket, type Ticket } from "../p2p/mod.ts";

/** The protocol version both sides announce in `hello`. */
export const PROTOCOL_VERSION = 1;

/**
 * A connection's frame budget: `burst` frames at once, refilled at `perSecond`. The server refuses
 * frames over it and announces it in `hello`; a client paces what it sends to stay inside it.
 */
export interface FrameLimits {
  burst: number;
  perSecond: number;
}

/** The budget a server has by default, and a client assumes when `hello` announces none. */
export const DEFAULT_FRAME_LIMITS: Readonly<FrameLimits> = { burst: 100, perSecond: 50 };

/** Frames a client sends. */
export type ClientFrame =
  | { t: "hello"; v: number; agent?: string }
  | { t: "user"; id: number; name: string }
  | { t: "pass"; id: number; password: string; udpPort: number }
  | {
    t: "cmd";
    id: number;
    line: string;
    /** The client's id for what the line sends (a private message relayed as `message`). */
    ref?: string;
  }
  | { t: "passwd"; id: number; old: string; new: string }
  | { t: "answer"; id: number; ask: number; yes: boolean }
  | { t: "ping" };

/** Why a reply failed, for programs; people read `lines`. */
export type ReplyCode =
  | "usage"
  | "invalid-command"
  | "failed"
  | "unknown-user"
  | "bad-password"
  | "locked"
  | "blocked"
  | "already-online"
  | "not-allowed"
  | "rate-limited"
  | "throttled"
  | "busy"
  | "unavailable";

/** A presence change: `<user> logged in` or `<user> logged out`. */
export type Presence = "logged in" | "logged out";

/**
 * Server-pushed events by kind, each with the lines people read and the data programs read.
 * `notice` is also what a client makes of an event kind it does not know (a newer server).
 */
export type ServerEvent =
  | { kind: "presence"; lines: string[]; data: { user: string; what: Presence } }
  | {
    kind: "message";
    lines: string[];
    /** `ref`: the sender's `ref` of the `cmd` that sent it, when it had one. */
    data: { from: string; ref?: string };
  }
  | { kind: "broadcast"; lines: string[]; data: { from: string } }
  | { kind: "notice"; lines: string[]; data?: { peer: string } }
  | { kind: "logout"; lines: string[]; data: { reason: "replaced" | "timeout" | "blocked" } }
  | { kind: "ask"; lines: string[]; data: { ask: number; from: string } }
  | { kind: "ticket"; lines: string[]; data: { ticket: Ticket } }
  | { kind: "private-stop"; lines: string[]; data: { peer: string; ticketId: string } }
  | {
    kind: "transfer-revoked";
    lines: string[];
    /** A file ticket revoked by a block; `peer` is the other side of that transfer. */
    data: { peer: string; ticketId: string };
  };

/** Kinds of server-pushed event. */
export type EventKind = ServerEvent["kind"];

/** The event of one kind. */
export type EventOf<K extends EventKind> = Extract<ServerEvent, { kind: K }>;

/** What a reply may carry for programs, beside its lines; each field belongs to one request. */
export interface ReplyData {
  /** `user`: what the client must ask for next. */
  need?: "password" | "new-password";
  /** `pass`: the name logged in as. */
  user?: string;
  /** `UPD`: the sender's ticket for the transfer. */
  ticket?: Ticket;
  /** `stopprivate`: the private session that ended. */
  ticketId?: string;
}

/** Frames the server sends. */
export type ServerFrame =
  | { t: "hello"; v: number; server: string; limits?: FrameLimits }
  | {
    t: "reply";
    id: number;
    ok: boolean;
    lines: string[];
    code?: ReplyCode;
    more?: true;
    data?: ReplyData;
  }
  | ({ t: "event" } & ServerEvent)
  | { t: "pong" }
  | { t: "error"; code: string; text: string };

/** A server-pushed event frame. */
export type EventFrame = Extract<ServerFrame, { t: "event" }>;

/** A frame that is well-formed JSON but not a message of this protocol. */
export class ProtocolError extends Error {
  constructor(readonly code: "malformed" | "unknown-frame", message: string) {
    super(message);
    this.name = "ProtocolError";
  }
}

/** Encodes any frame as its one-line text (without the newline). */
export function encodeFrame(frame: ClientFrame | ServerFrame): string {
  return JSON.stringify(frame);
}

/**
 * A field's expected form: a JSON type, a list of allowed strings, a peer-to-peer ticket, or a
 * frame budget (an object of two positive numbers).
 */
type Field =
  | "string"
  | "number"
  | "boolean"
  | "lines"
  | "object"
  | "true"
  | "ticket"
  | "limits"
  /** 1–64 letters, digits, `-` or `_`: a client's id for what a `cmd` sends. */
  | "ref"
  | readonly string[];
type Shape = Record<string, Field>;

const CLIENT_SHAPES: Record<ClientFrame["t"], { required: Shape; optional?: Shape }> = {
  hello: { required: { v: "number" }, optional: { agent: "string" } },
  user: { required: { id: "number", name: "string" } },
  pass: { required: { id: "number", password: "string", udpPort: "number" } },
  cmd: { required: { id: "number", line: "string" }, optional: { ref: "ref" } },
  passwd: { required: { id: "number", old: "string", new: "string" } },
  answer: { required: { id: "number", ask: "number", yes: "boolean" } },
  ping: { required: {} },
};

const SERVER_SHAPES: Record<ServerFrame["t"], { required: Shape; optional?: Shape }> = {
  hello: { required: { v: "number", server: "string" }, optional: { limits: "limits" } },
  reply: {
    required: { id: "number", ok: "boolean", lines: "lines" },
    optional: { code: "string", more: "true", data: "object" },
  },
  event: { required: { kind: "string", lines: "lines" }, optional: { data: "object" } },
  pong: { required: {} },
  error: { required: { code: "string", text: "string" } },
};

const REF = /^[A-Za-z0-9_-]{1,64}$/;

function fits(value: unknown, kind: Field): boolean {
  if (typeof kind !== "string") return typeof value === "string" && kind.includes(value);
  switch (kind) {
    case "number":
      return typeof value === "number" && Number.isSafeInteger(value);
    case "lines":
      return Array.isArray(value) && value.every((line) => typeof line === "string");
    case "object":
      return typeof value === "object" && value !== null && !Array.isArray(value);
    case "true":
      return value === true;
    case "string":
      return typeof value === "string";
    case "ref":
      return typeof value === "string" && REF.test(value);
    case "boolean":
      return typeof value === "boolean";
    case "limits":
      return typeof value === "object" && value !== null &&
        isPositive((value as Record<string, unknown>).burst) &&
        isPositive((value as Record<string, unknown>).perSecond);
    case "ticket":
      try {
        parseTicket(value);
        return true;
      } catch {
        return false;
      }
  }
}

function isPositive(value: unknown): boolean {
  return typeof value === "number" && Number.isFinite(value) && value > 0;
}

/** Each event kind's `data`: the fields it must have (none for a notice), and may have. */
const EVENT_DATA: Record<EventKind, { required: Shape; optional?: Shape }> = {
  presence: { required: { user: "string", what: ["logged in", "logged out"] } },
  message: { required: { from: "string" }, optional: { ref: "ref" } },
  broadcast: { required: { from: "string" } },
  notice: { required: {}, optional: { peer: "string" } },
  logout: { required: { reason: ["replaced", "timeout", "blocked"] } },
  ask: { required: { ask: "number", from: "string" } },
  ticket: { required: { ticket: "ticket" } },
  "private-stop": { required: { peer: "string", ticketId: "string" } },
  "transfer-revoked": { required: { peer: "string", ticketId: "string" } },
};

/** The fields a reply's `data` may have. */
const REPLY_DATA: Shape = {
  need: ["password", "new-password"],
  user: "string",
  ticket: "ticket",
  ticketId: "string",
};

/** Throws unless every required field fits and every optional field present fits. */
function checkFields(
  record: Record<string, unknown>,
  shape: { required: Shape; optional?: Shape },
  what: string,
): void {
  for (const [field, kind] of Object.entries(shape.required)) {
    if (!fits(record[field], kind)) {
      throw new ProtocolError("malformed", `${what} has a missing or bad "${field}"`);
    }
  }
  for (const [field, kind] of Object.entries(shape.optional ?? {})) {
    if (record[field] !== undefined && !fits(record[field], kind)) {
      throw new ProtocolError("malformed", `${what} has a bad "${field}"`);
    }
  }
}

function decodeWith<T>(
  text: string,
  shapes: Record<string, { required: Shape; optional?: Shape }>,
): T {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new ProtocolError("malformed", "Frame is not valid JSON");
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new ProtocolError("malformed", "Frame is not a JSON object");
  }
  const record = value as Record<string, unknown>;
  const type = record.t;
  if (typeof type !== "string") throw new ProtocolError("malformed", "Frame has no type");
  const shape = Object.hasOwn(shapes, type) ? shapes[type] : undefined;
  if (!shape) throw new ProtocolError("unknown-frame", `Unknown frame type "${type}"`);
  checkFields(record, shape, `Frame "${type}"`);
  return record as T;
}

/** Parses a frame a client sent; throws ProtocolError when it is not one. */
export function decodeClientFrame(text: string): ClientFrame {
  return decodeWith<ClientFrame>(text, CLIENT_SHAPES);
}

/**
 * Parses a frame the server sent, `data` checked per event kind; throws ProtocolError when it is
 * not one. An event of a kind this client does not know is read as a notice, so a newer server's
 * news is still shown.
 */
export function decodeServerFrame(text: string): ServerFrame {
  const frame = decodeWith<ServerFrame>(text, SERVER_SHAPES);
  const data = (frame as { data?: Record<string, unknown> }).data;
  if (frame.t === "event") {
    const kind: string = frame.kind;
    if (!Object.hasOwn(EVENT_DATA, kind)) return { t: "event", kind: "notice", lines: frame.lines };
    const shape = EVENT_DATA[kind as EventKind];
    if (data === undefined && Object.keys(shape.required).length === 0) return frame;
    checkFields(data ?? {}, shape, `Event "${kind}" data`);
  } else if (frame.t === "reply" && data !== undefined) {
    checkFields(data, { required: {}, optional: REPLY_DATA }, "Reply data");
  }
  // A ticket that passed the check is kept as the engine's own parse of it.
  if (data?.ticket !== undefined) data.ticket = parseTicket(data.ticket);
  return frame;
}
