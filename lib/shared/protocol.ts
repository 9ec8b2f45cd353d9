/**
 * The client–server wire protocol: every frame is one JSON object on one line (see
 * docs/PROTOCOL.md). This module turns frame text into typed messages and back; it never
 * touches a socket.
 */

/** The protocol version both sides announce in `hello`. */
export const PROTOCOL_VERSION = 1;

/** Frames a client sends. */
export type ClientFrame =
  | { t: "hello"; v: number; agent?: string }
  | { t: "user"; id: number; name: string }
  | { t: "pass"; id: number; password: string; udpPort: number }
  | { t: "cmd"; id: number; line: string }
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
  | "rate-limited";

/** Kinds of server-pushed event. */
export type EventKind =
  | "presence"
  | "message"
  | "broadcast"
  | "notice"
  | "logout"
  | "ask"
  | "ticket"
  | "private-stop";

/** Frames the server sends. */
export type ServerFrame =
  | { t: "hello"; v: number; server: string }
  | {
    t: "reply";
    id: number;
    ok: boolean;
    lines: string[];
    code?: ReplyCode;
    more?: true;
    data?: Record<string, unknown>;
  }
  | { t: "event"; kind: EventKind; lines: string[]; data?: Record<string, unknown> }
  | { t: "pong" }
  | { t: "error"; code: string; text: string };

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

type Shape = Record<string, "string" | "number" | "boolean" | "lines" | "object" | "true">;

const CLIENT_SHAPES: Record<ClientFrame["t"], { required: Shape; optional?: Shape }> = {
  hello: { required: { v: "number" }, optional: { agent: "string" } },
  user: { required: { id: "number", name: "string" } },
  pass: { required: { id: "number", password: "string", udpPort: "number" } },
  cmd: { required: { id: "number", line: "string" } },
  passwd: { required: { id: "number", old: "string", new: "string" } },
  answer: { required: { id: "number", ask: "number", yes: "boolean" } },
  ping: { required: {} },
};

const SERVER_SHAPES: Record<ServerFrame["t"], { required: Shape; optional?: Shape }> = {
  hello: { required: { v: "number", server: "string" } },
  reply: {
    required: { id: "number", ok: "boolean", lines: "lines" },
    optional: { code: "string", more: "true", data: "object" },
  },
  event: { required: { kind: "string", lines: "lines" }, optional: { data: "object" } },
  pong: { required: {} },
  error: { required: { code: "string", text: "string" } },
};

function fits(value: unknown, kind: Shape[string]): boolean {
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
    case "boolean":
      return typeof value === "boolean";
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
  for (const [field, kind] of Object.entries(shape.required)) {
    if (!fits(record[field], kind)) {
      throw new ProtocolError("malformed", `Frame "${type}" has a missing or bad "${field}"`);
    }
  }
  for (const [field, kind] of Object.entries(shape.optional ?? {})) {
    if (record[field] !== undefined && !fits(record[field], kind)) {
      throw new ProtocolError("malformed", `Frame "${type}" has a bad "${field}"`);
    }
  }
  return record as T;
}

/** Parses a frame a client sent; throws ProtocolError when it is not one. */
export function decodeClientFrame(text: string): ClientFrame {
  return decodeWith<ClientFrame>(text, CLIENT_SHAPES);
}

/** Parses a frame the server sent; throws ProtocolError when it is not one. */
export function decodeServerFrame(text: string): ServerFrame {
  return decodeWith<ServerFrame>(text, SERVER_SHAPES);
}
