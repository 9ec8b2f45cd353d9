/**
 * What every session (a file sender, a file receiver, a chat) shares: its ticket's key and
 * identity on the wire, its own packet numbering, its replay window and the node services it uses.
 *
 * @module
 */

import type { KeyObject } from "node:crypto";
import type { Clock } from "./clock.ts";
import type { TransferFailureReason } from "./errors.ts";
import type { Ticket } from "./ticket.ts";
import type { PeerAddress } from "./ticket.ts";
import {
  Direction,
  encodePacket,
  type Header,
  importKey,
  type Message,
  ReplayWindow,
  ticketIdBytes,
} from "./wire.ts";

/** Progress of a file transfer, reported a few times a second and once at the end. */
export interface TransferProgress {
  ticketId: string;
  direction: "send" | "receive";
  peer: string;
  fileName: string;
  bytesDone: number;
  bytesTotal: number;
  elapsedMs: number;
}

/** A file that was received, verified and saved. */
export interface FileReceived {
  ticketId: string;
  /** The sender's username. */
  from: string;
  /** The (safe) base name the sender gave. */
  fileName: string;
  /** Where it was saved: the download directory joined with the final name. */
  savedAs: string;
  bytes: number;
  elapsedMs: number;
}

/** A receiving transfer that failed; its partial file is already removed. */
export interface TransferFailed {
  ticketId: string;
  peer: string;
  fileName: string;
  direction: "send" | "receive";
  reason: TransferFailureReason;
  detail?: string;
  /**
   * Why the receiver refused the offer, when it did: `too-large` (over `maxFileBytes`) or
   * `no-space` (more than the download directory has free).
   */
  refused?: "too-large" | "no-space";
}

/** A private message that arrived (once, however often it was sent), whole. */
export interface PrivateMessage {
  ticketId: string;
  from: string;
  /** The sender's id for the message (16 lowercase hex characters), as given to sendPrivate. */
  id: string;
  text: string;
}

/** Why a chat session ended, as told to {@linkcode PeerEvents.onChatClosed}. */
export type ChatCloseReason = "peer-stopped" | "peer-gone";

/** A chat session that the peer ended. */
export interface ChatClosed {
  ticketId: string;
  peer: string;
  reason: ChatCloseReason;
}

/** Callbacks through which the engine reports what happens; all optional. */
export interface PeerEvents {
  /** Progress of a transfer in either direction. */
  onProgress?(progress: TransferProgress): void;
  /** A file was received, verified and saved. */
  onFileReceived?(received: FileReceived): void;
  /** A receiving transfer failed (a sending one rejects its `sendFile()` promise instead). */
  onTransferFailed?(failed: TransferFailed): void;
  /** A private message arrived. */
  onPrivateMessage?(message: PrivateMessage): void;
  /** The peer of a chat session ended it. */
  onChatClosed?(closed: ChatClosed): void;
}

/** Timers and sizes of the engine. Every field has a default (see docs/P2P.md). */
export interface EngineSettings {
  payloadBytes: number;
  loopbackPayloadBytes: number;
  idleTimeoutMs: number;
  handshakeTimeoutMs: number;
  handshakeRetryMs: number;
  initialRtoMs: number;
  minRtoMs: number;
  maxRtoMs: number;
  messageRetryMs: number;
  messageGiveUpMs: number;
  lingerMs: number;
  progressIntervalMs: number;
  receiveWindowBytes: number;
  maxBufferedWriteBytes: number;
  maxFileBytes: number;
}

/** Defaults of {@linkcode EngineSettings}. */
export const DEFAULT_SETTINGS: Readonly<EngineSettings> = {
  payloadBytes: 1200,
  loopbackPayloadBytes: 32768,
  idleTimeoutMs: 10_000,
  handshakeTimeoutMs: 10_000,
  handshakeRetryMs: 200,
  initialRtoMs: 250,
  minRtoMs: 40,
  maxRtoMs: 2_000,
  messageRetryMs: 250,
  messageGiveUpMs: 2_500,
  lingerMs: 5_000,
  progressIntervalMs: 100,
  receiveWindowBytes: 8 * 1024 * 1024,
  maxBufferedWriteBytes: 16 * 1024 * 1024,
  maxFileBytes: Number.MAX_SAFE_INTEGER,
};

/** Counters of what a session sent, for progress reports and the benchmark. */
export interface SessionCounters {
  datagramsSent: number;
  datagramsReceived: number;
}

/** The node services a session uses. */
export interface NodeContext {
  readonly clock: Clock;
  readonly settings: Readonly<EngineSettings>;
  readonly events: PeerEvents;
  readonly downloadDir: string;
  /** Bytes free in a directory, or undefined when unknown. */
  freeBytes(dir: string): Promise<number | undefined>;
  /** Sends a datagram; never rejects (a lost send is just loss). */
  send(packet: Uint8Array, to: PeerAddress): Promise<void>;
  /** Calls an event handler, isolating the engine from a throwing handler. */
  emit<K extends keyof PeerEvents>(name: K, value: Parameters<NonNullable<PeerEvents[K]>>[0]): void;
  /** Forgets a session (its ticket id then drops like any unknown one). */
  remove(session: Session): void;
}

/**
 * Reports a transfer's progress through `context`, at most once per `progressIntervalMs`
 * unless `final`. `throttle.last` remembers the last report; each transfer keeps its own.
 */
export function reportProgress(
  context: NodeContext,
  throttle: { last: number },
  progress: Omit<TransferProgress, "elapsedMs">,
  started: number,
  final: boolean,
): void {
  const now = context.clock.now();
  if (!final && now - throttle.last < context.settings.progressIntervalMs) return;
  throttle.last = now;
  context.emit("onProgress", { ...progress, elapsedMs: now - started });
}

/** Base of the three session kinds. */
export abstract class Session {
  readonly ticket: Ticket;
  readonly key: KeyObject;
  readonly idBytes: Uint8Array;
  /** My direction bit; the peer's datagrams must carry the other one. */
  readonly direction: number;
  readonly peerDirection: number;
  readonly replay = new ReplayWindow();
  readonly counters: SessionCounters = { datagramsSent: 0, datagramsReceived: 0 };
  /** Where to send: the ticket's address, then wherever authenticated datagrams come from. */
  peerAddress: PeerAddress;
  /** When an authenticated datagram last arrived (clock ms). */
  lastHeard: number;
  protected readonly context: NodeContext;
  #nextPacketNumber = 0;

  constructor(ticket: Ticket, context: NodeContext) {
    this.ticket = ticket;
    this.context = context;
    this.key = importKey(ticket.key);
    this.idBytes = ticketIdBytes(ticket.id);
    const forward = ticket.role === "sender" || ticket.role === "initiator";
    this.direction = forward ? Direction.FORWARD : Direction.BACKWARD;
    this.peerDirection = forward ? Direction.BACKWARD : Direction.FORWARD;
    this.peerAddress = ticket.address;
    this.lastHeard = context.clock.now();
  }

  /** Takes the next packet number; each is used once, retransmissions included. */
  nextPacketNumber(): number {
    if (this.#nextPacketNumber >= 0xffffffff) {
      throw new RangeError(`Packet numbers of ticket ${this.ticket.id} are exhausted`);
    }
    return this.#nextPacketNumber++;
  }

  /** How many packet numbers were taken so far (the next one to be used). */
  get packetNumbersUsed(): number {
    return this.#nextPacketNumber;
  }

  /** Encodes, seals and sends one message to the peer. */
  sendMessage(message: Message): Promise<void> {
    const packet = encodePacket(this.key, {
      direction: this.direction,
      id: this.idBytes,
      packetNumber: this.nextPacketNumber(),
    }, message);
    this.counters.datagramsSent++;
    return this.context.send(packet, this.peerAddress);
  }

  /** Handles an authenticated, fresh datagram from the peer. */
  abstract handle(message: Message, header: Header): void;

  /** Stops the session because the node is closing; tells the peer; resolves when cleaned up. */
  abstract shutdown(): Promise<void>;
}
