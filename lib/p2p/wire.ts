/**
 * The P2P datagram format: a pure module that turns typed messages into authenticated datagrams
 * and back, and never touches a socket. Byte layouts are documented in docs/P2P.md.
 *
 * Every datagram is `header | body | tag`: a 24-byte header (magic, version, type, direction,
 * ticket id, packet number), a type-specific body and a 16-byte truncated HMAC-SHA256 tag over
 * everything before it, keyed with the ticket key.
 *
 * @module
 */

import { createHmac, createSecretKey, type KeyObject, timingSafeEqual } from "node:crypto";
import { TRANSFER_FAILURE_REASONS, type TransferFailureReason } from "./errors.ts";

/** First byte of every datagram ("T" for TOOM). */
export const MAGIC = 0x54;
/** Format version; datagrams of another version are dropped. 2: MSG carries a message id. */
export const VERSION = 2;
/** Bytes before the body. */
export const HEADER_BYTES = 24;
/** Bytes of the truncated HMAC-SHA256 tag at the end. */
export const TAG_BYTES = 16;
/** Header plus tag: what a datagram costs beyond its body. */
export const OVERHEAD_BYTES = HEADER_BYTES + TAG_BYTES;
/** Largest UDP payload over IPv4. */
export const MAX_DATAGRAM_BYTES = 65507;
/** Largest file name in an offer, in UTF-8 bytes. */
export const MAX_NAME_BYTES = 255;
/** Largest abort detail, in UTF-8 bytes. */
export const MAX_DETAIL_BYTES = 200;
/** Largest ACK bitmap in bytes (8 chunks per byte), so an ACK fits a 1,200-byte datagram. */
export const MAX_ACK_BITMAP_BYTES = 1024;
/** Bytes of a MSG body before its text: sequence, message id, part and part count. */
export const MSG_HEADER_BYTES = 14;
/** Largest text in one MSG, in UTF-8 bytes, so a MSG fits a 1,200-byte datagram. */
export const MAX_MSG_TEXT_BYTES = 1200 - OVERHEAD_BYTES - MSG_HEADER_BYTES;
/** Most MSG datagrams one private message is split into. */
export const MAX_MSG_PARTS = 4;

/** Datagram types. Direction says which side may send each (see docs/P2P.md). */
export const PacketType = {
  OFFER: 1,
  ACCEPT: 2,
  DATA: 3,
  ACK: 4,
  FIN: 5,
  DONE: 6,
  ABORT: 7,
  MSG: 8,
  MSG_ACK: 9,
  CLOSE: 10,
} as const;

/** Direction bit: who sent the datagram. Binding it in stops reflected datagrams. */
export const Direction = {
  /** The file sender or the chat initiator. */
  FORWARD: 0,
  /** The file receiver or the chat responder. */
  BACKWARD: 1,
} as const;

/** Why a chat was closed, as carried by CLOSE. */
export type CloseReason = "peer-stopped" | "peer-gone";

/** A decoded datagram body. */
export type Message =
  | { type: typeof PacketType.OFFER; size: number; chunkSize: number; name: string }
  | { type: typeof PacketType.ACCEPT; window: number }
  | { type: typeof PacketType.DATA; chunk: number; payload: Uint8Array }
  | {
    type: typeof PacketType.ACK;
    cumulative: number;
    echoPn: number;
    ackDelayUs: number;
    /** Bit i set: chunk `(cumulative & ~7) + i` received. */
    bitmap: Uint8Array;
  }
  | { type: typeof PacketType.FIN; sha256: Uint8Array }
  | { type: typeof PacketType.DONE }
  | { type: typeof PacketType.ABORT; reason: TransferFailureReason; detail: string }
  | {
    type: typeof PacketType.MSG;
    seq: number;
    /** The sender's id for the whole message (16 lowercase hex characters). */
    id: string;
    /** Which part of the message this is (0-based), of `parts`. */
    part: number;
    parts: number;
    text: string;
  }
  | { type: typeof PacketType.MSG_ACK; seq: number }
  | { type: typeof PacketType.CLOSE; seq: number; reason: CloseReason };

/** The authenticated header fields of a datagram. */
export interface Header {
  type: number;
  direction: number;
  /** The ticket id as 32 lowercase hex characters. */
  ticketId: string;
  packetNumber: number;
}

const ENCODER = new TextEncoder();
const DECODER = new TextDecoder("utf-8", { fatal: true });
const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));
const CLOSE_REASONS: readonly CloseReason[] = ["peer-stopped", "peer-gone"];

/** Turns a base64 ticket key into a key object for HMAC (done once per ticket). */
export function importKey(base64Key: string): KeyObject {
  const bytes = Uint8Array.from(atob(base64Key), (c) => c.charCodeAt(0));
  return createSecretKey(bytes);
}

/** Turns a 32-hex-character ticket id into its 16 bytes. */
export function ticketIdBytes(id: string): Uint8Array {
  return hexBytes(id, 16);
}

/** Turns `2 × length` hex characters into `length` bytes. */
function hexBytes(hex: string, length: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return out;
}

/**
 * Allocates a datagram of `bodyBytes` body with its header written and room for the tag.
 * Fill the body at {@linkcode HEADER_BYTES}, then call {@linkcode sealPacket}.
 */
export function newPacket(
  type: number,
  direction: number,
  id: Uint8Array,
  packetNumber: number,
  bodyBytes: number,
): Uint8Array {
  const bytes = new Uint8Array(HEADER_BYTES + bodyBytes + TAG_BYTES);
  bytes[0] = MAGIC;
  bytes[1] = VERSION;
  bytes[2] = type;
  bytes[3] = direction;
  bytes.set(id, 4);
  new DataView(bytes.buffer, bytes.byteOffset).setUint32(20, packetNumber);
  return bytes;
}

/** Writes the tag: HMAC-SHA256 with `key` over everything before it, truncated. */
export function sealPacket(key: KeyObject, packet: Uint8Array): Uint8Array {
  const end = packet.length - TAG_BYTES;
  const mac = createHmac("sha256", key).update(packet.subarray(0, end)).digest();
  packet.set(mac.subarray(0, TAG_BYTES), end);
  return packet;
}

/** True if the tag of `packet` is right for `key` (constant-time comparison). */
export function verifyPacket(key: KeyObject, packet: Uint8Array): boolean {
  if (packet.length < OVERHEAD_BYTES) return false;
  const end = packet.length - TAG_BYTES;
  const mac = createHmac("sha256", key).update(packet.subarray(0, end)).digest();
  return timingSafeEqual(mac.subarray(0, TAG_BYTES), packet.subarray(end));
}

/**
 * Reads the header of a datagram without trusting it (the tag is checked afterwards with the
 * key of the ticket it names). Returns `null` for anything that is not a TOOM datagram.
 */
export function parseHeader(packet: Uint8Array): Header | null {
  if (packet.length < OVERHEAD_BYTES || packet[0] !== MAGIC || packet[1] !== VERSION) return null;
  const type = packet[2]!;
  const direction = packet[3]!;
  if (type < PacketType.OFFER || type > PacketType.CLOSE || direction > 1) return null;
  let ticketId = "";
  for (let i = 4; i < 20; i++) ticketId += HEX[packet[i]!];
  const packetNumber = new DataView(packet.buffer, packet.byteOffset).getUint32(20);
  return { type, direction, ticketId, packetNumber };
}

/** Builds and seals a datagram carrying `message`. */
export function encodePacket(
  key: KeyObject,
  header: { direction: number; id: Uint8Array; packetNumber: number },
  message: Message,
): Uint8Array {
  let body: Uint8Array;
  switch (message.type) {
    case PacketType.OFFER: {
      const name = truncateUtf8(message.name, MAX_NAME_BYTES);
      body = new Uint8Array(14 + name.length);
      const v = view(body);
      v.setUint32(0, Math.floor(message.size / 2 ** 32));
      v.setUint32(4, message.size >>> 0);
      v.setUint32(8, message.chunkSize);
      v.setUint16(12, name.length);
      body.set(name, 14);
      break;
    }
    case PacketType.ACCEPT:
      body = new Uint8Array(4);
      view(body).setUint32(0, message.window);
      break;
    case PacketType.DATA:
      body = new Uint8Array(4 + message.payload.length);
      view(body).setUint32(0, message.chunk);
      body.set(message.payload, 4);
      break;
    case PacketType.ACK: {
      body = new Uint8Array(14 + message.bitmap.length);
      const v = view(body);
      v.setUint32(0, message.cumulative);
      v.setUint32(4, message.echoPn);
      v.setUint32(8, message.ackDelayUs);
      v.setUint16(12, message.bitmap.length);
      body.set(message.bitmap, 14);
      break;
    }
    case PacketType.FIN:
      body = message.sha256.slice(0, 32);
      break;
    case PacketType.DONE:
      body = new Uint8Array(0);
      break;
    case PacketType.ABORT: {
      const detail = truncateUtf8(message.detail, MAX_DETAIL_BYTES);
      body = new Uint8Array(1 + detail.length);
      body[0] = TRANSFER_FAILURE_REASONS.indexOf(message.reason) + 1;
      body.set(detail, 1);
      break;
    }
    case PacketType.MSG: {
      const text = ENCODER.encode(message.text);
      body = new Uint8Array(MSG_HEADER_BYTES + text.length);
      view(body).setUint32(0, message.seq);
      body.set(hexBytes(message.id, 8), 4);
      body[12] = message.part;
      body[13] = message.parts;
      body.set(text, MSG_HEADER_BYTES);
      break;
    }
    case PacketType.MSG_ACK:
      body = new Uint8Array(4);
      view(body).setUint32(0, message.seq);
      break;
    case PacketType.CLOSE:
      body = new Uint8Array(5);
      view(body).setUint32(0, message.seq);
      body[4] = CLOSE_REASONS.indexOf(message.reason) + 1;
      break;
  }
  const packet = newPacket(
    message.type,
    header.direction,
    header.id,
    header.packetNumber,
    body.length,
  );
  packet.set(body, HEADER_BYTES);
  return sealPacket(key, packet);
}

/**
 * Decodes the body of an authenticated datagram of type `type`. Returns `null` if the body is
 * malformed; such datagrams are dropped. DATA payloads and ACK bitmaps are views into `packet`.
 */
export function decodeBody(type: number, packet: Uint8Array): Message | null {
  const body = packet.subarray(HEADER_BYTES, packet.length - TAG_BYTES);
  const v = view(body);
  try {
    switch (type) {
      case PacketType.OFFER: {
        if (body.length < 14) return null;
        const size = v.getUint32(0) * 2 ** 32 + v.getUint32(4);
        const chunkSize = v.getUint32(8);
        const nameLength = v.getUint16(12);
        if (body.length !== 14 + nameLength || nameLength > MAX_NAME_BYTES) return null;
        if (!Number.isSafeInteger(size) || chunkSize < 1) return null;
        if (chunkSize > MAX_DATAGRAM_BYTES - OVERHEAD_BYTES - 4) return null;
        const name = DECODER.decode(body.subarray(14));
        return { type, size, chunkSize, name };
      }
      case PacketType.ACCEPT:
        if (body.length !== 4) return null;
        return { type, window: v.getUint32(0) };
      case PacketType.DATA:
        if (body.length < 4) return null;
        return { type, chunk: v.getUint32(0), payload: body.subarray(4) };
      case PacketType.ACK: {
        if (body.length < 14) return null;
        const length = v.getUint16(12);
        if (body.length !== 14 + length || length > MAX_ACK_BITMAP_BYTES) return null;
        return {
          type,
          cumulative: v.getUint32(0),
          echoPn: v.getUint32(4),
          ackDelayUs: v.getUint32(8),
          bitmap: body.subarray(14),
        };
      }
      case PacketType.FIN:
        if (body.length !== 32) return null;
        return { type, sha256: body };
      case PacketType.DONE:
        return body.length === 0 ? { type } : null;
      case PacketType.ABORT: {
        const reason = TRANSFER_FAILURE_REASONS[(body[0] ?? 0) - 1];
        if (reason === undefined || body.length > 1 + MAX_DETAIL_BYTES) return null;
        return { type, reason, detail: DECODER.decode(body.subarray(1)) };
      }
      case PacketType.MSG: {
        if (body.length < MSG_HEADER_BYTES) return null;
        if (body.length > MSG_HEADER_BYTES + MAX_MSG_TEXT_BYTES) return null;
        const part = body[12]!;
        const parts = body[13]!;
        if (parts < 1 || parts > MAX_MSG_PARTS || part >= parts) return null;
        let id = "";
        for (let i = 4; i < 12; i++) id += HEX[body[i]!];
        const text = DECODER.decode(body.subarray(MSG_HEADER_BYTES));
        return { type, seq: v.getUint32(0), id, part, parts, text };
      }
      case PacketType.MSG_ACK:
        if (body.length !== 4) return null;
        return { type, seq: v.getUint32(0) };
      case PacketType.CLOSE: {
        const reason = CLOSE_REASONS[(body[4] ?? 0) - 1];
        if (body.length !== 5 || reason === undefined) return null;
        return { type, seq: v.getUint32(0), reason };
      }
      default:
        return null;
    }
  } catch {
    // Invalid UTF-8 in a name, detail or text.
    return null;
  }
}

/** Encodes `text` as UTF-8, cut to at most `max` bytes on a character boundary. */
export function truncateUtf8(text: string, max: number): Uint8Array {
  const bytes = ENCODER.encode(text);
  if (bytes.length <= max) return bytes;
  let end = max;
  while (end > 0 && ((bytes[end] ?? 0) & 0xc0) === 0x80) end--;
  return bytes.slice(0, end);
}

/**
 * Sliding-window replay filter over packet numbers (as in IPsec and DTLS): each packet number is
 * accepted once, and numbers too far behind the highest seen are refused as stale.
 */
export class ReplayWindow {
  #bits: Uint8Array;
  #size: number;
  #highest = -1;

  /** A window remembering the last `size` packet numbers (a multiple of 8). */
  constructor(size = 16384) {
    this.#size = size;
    this.#bits = new Uint8Array(size >> 3);
  }

  /** Accepts `pn` (and remembers it) unless it was seen before or is too old. */
  accept(pn: number): boolean {
    const size = this.#size;
    if (pn > this.#highest) {
      const clearFrom = Math.max(this.#highest + 1, pn - size + 1);
      for (let n = clearFrom; n < pn; n++) this.#clear(n);
      this.#highest = pn;
      this.#set(pn);
      return true;
    }
    if (pn <= this.#highest - size) return false;
    const i = pn % size;
    if ((this.#bits[i >> 3]! & (1 << (i & 7))) !== 0) return false;
    this.#set(pn);
    return true;
  }

  #set(n: number): void {
    const i = n % this.#size;
    this.#bits[i >> 3]! |= 1 << (i & 7);
  }

  #clear(n: number): void {
    const i = n % this.#size;
    this.#bits[i >> 3]! &= ~(1 << (i & 7));
  }
}

function view(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
