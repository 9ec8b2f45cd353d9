/**
 * A private chat session: messages with sequence numbers, acknowledged and retried, delivered
 * once each however often they arrive; CLOSE tells the peer the session ended.
 *
 * @module
 */

import type { TimerHandle } from "./clock.ts";
import { PeerUnreachableError } from "./errors.ts";
import { type ChatCloseReason, type NodeContext, Session } from "./session.ts";
import type { Ticket } from "./ticket.ts";
import { type Message, OVERHEAD_BYTES, PacketType } from "./wire.ts";

/** Largest private message, in UTF-8 bytes, so a MSG fits a 1,200-byte datagram. */
export const MAX_PRIVATE_TEXT_BYTES = 1200 - OVERHEAD_BYTES - 4;

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

  /** Opens the session for `ticket`. */
  constructor(ticket: Ticket, context: NodeContext) {
    super(ticket, context);
  }

  /** True until either side closes the session. */
  get isOpen(): boolean {
    return this.#open;
  }

  /** Sends `text`; resolves once acknowledged, rejects with PeerUnreachableError on giving up. */
  sendText(text: string): Promise<void> {
    if (!this.#open) {
      return Promise.reject(new PeerUnreachableError(this.ticket.peer, this.ticket.id));
    }
    const bytes = new TextEncoder().encode(text).length;
    if (bytes > MAX_PRIVATE_TEXT_BYTES) {
      return Promise.reject(
        new RangeError(
          `Cannot send a private message of ${bytes} bytes: at most ${MAX_PRIVATE_TEXT_BYTES}`,
        ),
      );
    }
    return this.#reliable({ type: PacketType.MSG, seq: this.#nextSeq++, text }, false);
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
          this.context.emit("onPrivateMessage", {
            ticketId: this.ticket.id,
            from: this.ticket.peer,
            text: message.text,
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
