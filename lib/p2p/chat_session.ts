/**
 * A private chat session: messages with sequence numbers, acknowledged and retried, delivered
 * once each however often they arrive; CLOSE tells the peer the session ended. A message longer
 * than one datagram holds travels in up to {@linkcode MAX_MSG_PARTS} parts and is shown whole.
 *
 * @module
 */

import type { TimerHandle } from "./clock.ts";
import { PeerUnreachableError } from "./errors.ts";
import { type ChatCloseReason, type NodeContext, Session } from "./session.ts";
import type { Ticket } from "./ticket.ts";
import { MAX_MSG_PARTS, MAX_MSG_TEXT_BYTES, type Message, PacketType } from "./wire.ts";

/**
 * Largest private message, in UTF-8 bytes. It is split into MSG datagrams of at most
 * {@linkcode MAX_MSG_TEXT_BYTES} on character boundaries (which waste at most 3 bytes each), so
 * any text this long fits {@linkcode MAX_MSG_PARTS} of them: 4,572 bytes, enough for 1,000
 * characters of any kind.
 */
export const MAX_PRIVATE_TEXT_BYTES = MAX_MSG_PARTS * (MAX_MSG_TEXT_BYTES - 3);

/** How many partly received messages a session keeps; the oldest is dropped beyond that. */
const MAX_PARTIAL_MESSAGES = 16;

const ID_PATTERN = /^[0-9a-f]{16}$/;
const ENCODER = new TextEncoder();
const DECODER = new TextDecoder();

/** A fresh message id: 64 random bits as 16 lowercase hex characters. */
export function newMessageId(): string {
  return Array.from(crypto.getRandomValues(new Uint8Array(8)))
    .map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** Splits `text` into pieces of at most `max` UTF-8 bytes, never inside a character. */
export function splitUtf8(text: string, max: number): string[] {
  if (max < 4) throw new RangeError(`Cannot split text into pieces of ${max} bytes: at least 4`);
  const bytes = ENCODER.encode(text);
  const pieces: string[] = [];
  let start = 0;
  do {
    let end = Math.min(start + max, bytes.length);
    while (end < bytes.length && ((bytes[end] ?? 0) & 0xc0) === 0x80) end--;
    pieces.push(DECODER.decode(bytes.subarray(start, end)));
    start = end;
  } while (start < bytes.length);
  return pieces;
}

interface Pending {
  message: Message;
  resolve: () => void;
  reject: (error: Error) => void;
  timer: TimerHandle | undefined;
  deadline: number;
  /** True for CLOSE: giving up resolves instead of rejecting. */
  bestEffort: boolean;
}

/** One private chat session. Created by `PeerNode.accept()` for a chat ticket. */
export class ChatSession extends Session {
  #nextSeq = 0;
  #pending = new Map<number, Pending>();
  /** Every sequence number below this was delivered; `#deliveredAbove` holds the rest. */
  #deliveredBelow = 0;
  #deliveredAbove = new Set<number>();
  #open = true;
  #lingerTimer: TimerHandle | undefined;
  /** Messages some of whose parts arrived, by id, oldest first. */
  #partial = new Map<string, Array<string | undefined>>();

  /** Opens the session for `ticket`. */
  constructor(ticket: Ticket, context: NodeContext) {
    super(ticket, context);
  }

  /** True until either side closes the session. */
  get isOpen(): boolean {
    return this.#open;
  }

  /**
   * Sends `text` as message `id` (16 lowercase hex characters), in as many parts as it needs;
   * resolves once every part is acknowledged, rejects with PeerUnreachableError on giving up.
   */
  sendText(text: string, id: string): Promise<void> {
    if (!ID_PATTERN.test(id)) {
      return Promise.reject(
        new TypeError(`Cannot send a private message with id "${id}": expected 16 hex digits`),
      );
    }
    const bytes = ENCODER.encode(text).length;
    if (bytes > MAX_PRIVATE_TEXT_BYTES) {
      return Promise.reject(
        new RangeError(
          `Cannot send a private message of ${bytes} bytes: at most ${MAX_PRIVATE_TEXT_BYTES}`,
        ),
      );
    }
    if (!this.#open) {
      return Promise.reject(new PeerUnreachableError(this.ticket.peer, this.ticket.id));
    }
    const pieces = splitUtf8(text, MAX_MSG_TEXT_BYTES);
    const parts = pieces.length;
    return Promise.all(pieces.map((piece, part) =>
      this.#reliable(
        { type: PacketType.MSG, seq: this.#nextSeq++, id, part, parts, text: piece },
        false,
      )
    )).then(() => {});
  }

  /** Ends the session; with `notifyPeer`, waits (briefly) for the peer to acknowledge CLOSE. */
  close(notifyPeer: boolean, reason: ChatCloseReason = "peer-stopped"): Promise<void> {
    if (!this.#open) return Promise.resolve();
    this.#open = false;
    this.#rejectPending();
    if (!notifyPeer) {
      this.context.remove(this);
      return Promise.resolve();
    }
    return this.#reliable({ type: PacketType.CLOSE, seq: this.#nextSeq++, reason }, true)
      .finally(() => this.context.remove(this));
  }

  override shutdown(): Promise<void> {
    if (this.#open) {
      this.#open = false;
      this.#rejectPending();
      void this.sendMessage({ type: PacketType.CLOSE, seq: this.#nextSeq++, reason: "peer-gone" });
    }
    this.#stopAll();
    return Promise.resolve();
  }

  override handle(message: Message): void {
    switch (message.type) {
      case PacketType.MSG:
        void this.sendMessage({ type: PacketType.MSG_ACK, seq: message.seq });
        if (this.#open && this.#firstTime(message.seq)) {
          const text = this.#assemble(message.id, message.part, message.parts, message.text);
          if (text === undefined) break;
          this.context.emit("onPrivateMessage", {
            ticketId: this.ticket.id,
            from: this.ticket.peer,
            id: message.id,
            text,
          });
        }
        break;
      case PacketType.MSG_ACK: {
        const pending = this.#pending.get(message.seq);
        if (pending !== undefined) {
          this.#pending.delete(message.seq);
          if (pending.timer !== undefined) this.context.clock.clearTimeout(pending.timer);
          pending.resolve();
        }
        break;
      }
      case PacketType.CLOSE:
        void this.sendMessage({ type: PacketType.MSG_ACK, seq: message.seq });
        if (this.#open) {
          this.#open = false;
          this.#rejectPending();
          this.context.emit("onChatClosed", {
            ticketId: this.ticket.id,
            peer: this.ticket.peer,
            reason: message.reason,
          });
          // Stay a while to acknowledge a retransmitted CLOSE whose acknowledgement was lost.
          this.#lingerTimer = this.context.clock.setTimeout(() => {
            this.#lingerTimer = undefined;
            this.context.remove(this);
          }, this.context.settings.lingerMs);
        }
        break;
      default:
        break;
    }
  }

  /** Keeps a part of message `id`; returns the whole text once its last part is in. */
  #assemble(id: string, part: number, parts: number, text: string): string | undefined {
    if (parts === 1) return text;
    let pieces = this.#partial.get(id);
    if (pieces === undefined) {
      if (this.#partial.size >= MAX_PARTIAL_MESSAGES) {
        this.#partial.delete(this.#partial.keys().next().value!);
      }
      pieces = new Array<string | undefined>(parts).fill(undefined);
      this.#partial.set(id, pieces);
    }
    // A part that disagrees on the count is not of this message.
    if (pieces.length !== parts) return undefined;
    pieces[part] = text;
    if (pieces.includes(undefined)) return undefined;
    this.#partial.delete(id);
    return pieces.join("");
  }

  #firstTime(seq: number): boolean {
    if (seq < this.#deliveredBelow || this.#deliveredAbove.has(seq)) return false;
    this.#deliveredAbove.add(seq);
    while (this.#deliveredAbove.delete(this.#deliveredBelow)) this.#deliveredBelow++;
    return true;
  }

  #reliable(message: Message & { seq: number }, bestEffort: boolean): Promise<void> {
    const s = this.context.settings;
    return new Promise<void>((resolve, reject) => {
      const pending: Pending = {
        message,
        resolve,
        reject,
        timer: undefined,
        deadline: this.context.clock.now() + s.messageGiveUpMs,
        bestEffort,
      };
      this.#pending.set(message.seq, pending);
      const attempt = () => {
        pending.timer = undefined;
        if (this.context.clock.now() >= pending.deadline) {
          this.#pending.delete(message.seq);
          if (bestEffort) resolve();
          else reject(new PeerUnreachableError(this.ticket.peer, this.ticket.id));
          return;
        }
        void this.sendMessage(message);
        const wait = Math.min(s.messageRetryMs, pending.deadline - this.context.clock.now());
        pending.timer = this.context.clock.setTimeout(attempt, Math.max(wait, 0));
      };
      attempt();
    });
  }

  #rejectPending(): void {
    for (const [seq, pending] of this.#pending) {
      if (pending.bestEffort) continue;
      this.#pending.delete(seq);
      if (pending.timer !== undefined) this.context.clock.clearTimeout(pending.timer);
      pending.reject(new PeerUnreachableError(this.ticket.peer, this.ticket.id));
    }
  }

  #stopAll(): void {
    for (const pending of this.#pending.values()) {
      if (pending.timer !== undefined) this.context.clock.clearTimeout(pending.timer);
      if (pending.bestEffort) pending.resolve();
      else pending.reject(new PeerUnreachableError(this.ticket.peer, this.ticket.id));
    }
    this.#pending.clear();
    if (this.#lingerTimer !== undefined) this.context.clock.clearTimeout(this.#lingerTimer);
    this.#lingerTimer = undefined;
  }
}
