/**
 * The sending side of a file transfer: offer, windowed sending with selective acknowledgement,
 * loss detection, retransmission (paced and windowed by congestion.ts), then FIN with the
 * whole-file SHA-256 and a wait for the receiver's DONE.
 *
 * @module
 */

import { createHash, type Hash } from "node:crypto";
import { CongestionControl } from "./congestion.ts";
import { REVOKED_DETAIL, TransferError, type TransferFailureReason } from "./errors.ts";
import { type NodeContext, reportProgress, Session } from "./session.ts";
import { isLoopback } from "./socket.ts";
import type { TimerHandle } from "./clock.ts";
import type { Ticket } from "./ticket.ts";
import {
  HEADER_BYTES,
  type Message,
  newPacket,
  OVERHEAD_BYTES,
  PacketType,
  sealPacket,
} from "./wire.ts";

/** What a finished `sendFile()` reports. */
export interface TransferResult {
  ticketId: string;
  peer: string;
  /** The base name offered to the receiver. */
  fileName: string;
  bytes: number;
  elapsedMs: number;
  /** Hex SHA-256 of the file, as verified by the receiver. */
  sha256: string;
  /** Payload bytes per DATA datagram used. */
  chunkSize: number;
  /** Every datagram this side sent (offers, data, FIN, ...). */
  datagramsSent: number;
  /** DATA datagrams sent, first sends and retransmissions. */
  dataDatagramsSent: number;
  /** DATA datagrams that were retransmissions. */
  retransmissions: number;
}

/** Chunk states in the send window ring. */
const UNSENT = 0;
const IN_FLIGHT = 1;
const ACKED = 2;
const LOST = 3;

/** Packets that may be overtaken before one counts as lost (as in QUIC and TCP). */
const REORDER_THRESHOLD = 3;
/** Largest window in chunks: an ACK bitmap of 1,024 bytes covers 8,192 chunks from a byte edge. */
export const MAX_WINDOW_CHUNKS = 8184;
/** Packet send times remembered for RTT samples. */
const PN_RING = 8192;
/** The file is read ahead in blocks of about this size (two buffers: one read while one is sent). */
const READ_BLOCK_BYTES = 1 << 20;
/**
 * Most bytes in flight to a loopback peer. The peer's kernel buffers only about 192 KiB of
 * datagrams (the default 208 KiB SO_RCVBUF, which Deno cannot raise): anything sent beyond what it
 * holds while the receiving process is busy (a GC pause, a disk write) is dropped.
 */
const LOOPBACK_MAX_IN_FLIGHT_BYTES = 160 * 1024;

/** Drives one outgoing file transfer. Created by `PeerNode.sendFile()`. */
export class FileSender extends Session {
  readonly fileName: string;
  readonly #path: string;
  readonly #started: number;
  #file: Deno.FsFile | undefined;
  #size = 0;
  #chunkSize: number;
  /** Flow-control cap on datagrams in flight, whatever cwnd says. */
  #maxInFlight = Infinity;
  #chunks = 0;
  #hash: Hash = createHash("sha256");
  #digest: Uint8Array | undefined;

  #accepted = false;
  #done = false;
  #failure: TransferError | undefined;
  #waiter: (() => void) | undefined;
  #waitTimer: TimerHandle | undefined;

  // Send window: chunks [cumulative, cumulative + window) live in ring slots chunk % window.
  #window = 0;
  #state = new Uint8Array(0);
  #slotPn = new Uint32Array(0);
  #cumulative = 0;
  #nextNew = 0;
  #inFlight = 0;
  #lost: number[] = [];
  #lostHead = 0;
  #sentLog: number[] = [];
  #sentLogHead = 0;
  #largestAckedPn = -1;
  #pnSentAt = new Float64Array(PN_RING);
  #lastEchoPn = -1;
  /** One reusable datagram per window slot; it keeps its chunk for retransmission until acked. */
  #packets: (Uint8Array | undefined)[] = [];

  // Read-ahead: chunks [#blockFirst, #blockFirst + #blockChunks) are in #block; the next block is
  // being read into the other buffer meanwhile.
  #block: Uint8Array = new Uint8Array(0);
  #blockFirst = 0;
  #blockChunks = 0;
  #spare: Uint8Array | undefined;
  #readAhead: Promise<Uint8Array | Error> | undefined;
  #readAheadFirst = 0;

  // Congestion control and timers.
  readonly #cc: CongestionControl;
  #rtoDeadline = Infinity;
  #lossDeadline = Infinity;
  readonly #progressThrottle = { last: -Infinity };

  #dataSent = 0;
  #retransmissions = 0;

  /** Prepares to send `path` under `ticket`; `run()` does the work. */
  constructor(ticket: Ticket, path: string, fileName: string, context: NodeContext) {
    super(ticket, context);
    this.#path = path;
    this.fileName = fileName;
    this.#started = context.clock.now();
    const s = context.settings;
    this.#chunkSize = isLoopback(ticket.address.hostname) ? s.loopbackPayloadBytes : s.payloadBytes;
    this.#cc = new CongestionControl(s);
    if (isLoopback(ticket.address.hostname)) {
      this.#maxInFlight = Math.max(4, Math.floor(LOOPBACK_MAX_IN_FLIGHT_BYTES / this.#chunkSize));
    }
  }

  /** Runs the transfer to the end; resolves once the receiver saved the file. */
  async run(signal?: AbortSignal): Promise<TransferResult> {
    const onAbort = () => this.fail("aborted", "cancelled by the sender", true);
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      if (signal?.aborted) throw new TransferError("aborted", this.fileName);
      try {
        this.#file = await Deno.open(this.#path, { read: true });
        const info = await this.#file.stat();
        if (!info.isFile) throw new Error(`${this.#path} is not a regular file`);
        this.#size = info.size;
      } catch (error) {
        this.fail("disk-error", errorText(error), true);
      }
      this.#check();
      this.#chunks = Math.ceil(this.#size / this.#chunkSize);
      await this.#handshake();
      await this.#transfer();
      await this.#finish();
      return {
        ticketId: this.ticket.id,
        peer: this.ticket.peer,
        fileName: this.fileName,
        bytes: this.#size,
        elapsedMs: this.context.clock.now() - this.#started,
        sha256: Array.from(this.#digest ?? [], (b) => b.toString(16).padStart(2, "0")).join(""),
        chunkSize: this.#chunkSize,
        datagramsSent: this.counters.datagramsSent,
        dataDatagramsSent: this.#dataSent,
        retransmissions: this.#retransmissions,
      };
    } finally {
      signal?.removeEventListener("abort", onAbort);
      this.#done = true;
      this.#clearWait();
      try {
        this.#file?.close();
      } catch {
        // Already closed.
      }
      this.context.remove(this);
    }
  }

  /** Fails the transfer for `reason`; with `notifyPeer`, sends the receiver an ABORT. */
  fail(reason: TransferFailureReason, detail?: string, notifyPeer = false): void {
    if (this.#failure !== undefined || this.#done) return;
    this.#failure = new TransferError(reason, this.fileName, detail);
    if (notifyPeer) void this.sendMessage({ type: PacketType.ABORT, reason, detail: detail ?? "" });
    this.#wake();
  }

  /** Stops the transfer because its ticket was revoked; false if it had ended already. */
  revoke(): boolean {
    if (this.#failure !== undefined || this.#done) return false;
    this.fail("aborted", REVOKED_DETAIL, true);
    return true;
  }

  override shutdown(): Promise<void> {
    this.fail("aborted", "the sender is shutting down", false);
    if (!this.#done) {
      void this.sendMessage({
        type: PacketType.ABORT,
        reason: "peer-gone",
        detail: "shutting down",
      });
    }
    return Promise.resolve();
  }

  override handle(message: Message): void {
    switch (message.type) {
      case PacketType.ACCEPT:
        if (!this.#accepted) {
          this.#accepted = true;
          this.#window = Math.max(1, Math.min(message.window, MAX_WINDOW_CHUNKS));
          this.#state = new Uint8Array(this.#window);
          this.#slotPn = new Uint32Array(this.#window);
          this.#cc.setMaxCwnd(this.#window);
          this.#wake();
        }
        break;
      case PacketType.ACK:
        if (this.#accepted) {
          this.#onAck(message.cumulative, message.echoPn, message.ackDelayUs, message.bitmap);
        }
        break;
      case PacketType.DONE:
        if (this.#digest !== undefined) {
          this.#done = true;
          this.#wake();
        }
        break;
      case PacketType.ABORT:
        this.fail(message.reason, message.detail ? `peer: ${message.detail}` : undefined);
        break;
      default:
        // Other types are never sent to a file sender; ignore them.
        break;
    }
  }

  #check(): void {
    if (this.#failure !== undefined) throw this.#failure;
  }

  async #handshake(): Promise<void> {
    const s = this.context.settings;
    const deadline = this.#started + s.handshakeTimeoutMs;
    let retry = s.handshakeRetryMs;
    let offers = 0;
    let lastOfferAt = 0;
    while (!this.#accepted) {
      this.#check();
      const now = this.context.clock.now();
      if (now >= deadline) {
        this.fail("timed-out", "no answer to the offer", true);
        this.#check();
      }
      lastOfferAt = now;
      offers++;
      void this.sendMessage({
        type: PacketType.OFFER,
        size: this.#size,
        chunkSize: this.#chunkSize,
        name: this.fileName,
      });
      await this.#wait(Math.min(retry, deadline - now));
      retry = Math.min(retry * 1.5, 1000);
    }
    this.#check();
    const now = this.context.clock.now();
    if (offers === 1) this.#cc.onRttSample(now - lastOfferAt);
    this.lastHeard = now;
    this.#cc.startPacing(now);
  }

  async #transfer(): Promise<void> {
    const s = this.context.settings;
    const clock = this.context.clock;
    while (this.#cumulative < this.#chunks) {
      this.#check();
      const now = clock.now();
      if (now - this.lastHeard >= s.idleTimeoutMs) {
        this.fail("peer-gone", "the receiver stopped answering", true);
        this.#check();
      }
      if (now >= this.#lossDeadline) this.#detectLoss(now);
      if (this.#inFlight > 0 && now >= this.#rtoDeadline) this.#onRto(now);
      const chunk = this.#pickChunk();
      if (chunk >= 0 && this.#inFlight < this.#maxInFlight && this.#cc.canSend(this.#inFlight)) {
        const wait = this.#cc.pacingDelay(now);
        if (wait > 0) {
          await this.#wait(wait);
          continue;
        }
        await this.#sendChunk(chunk);
        continue;
      }
      const idleAt = this.lastHeard + s.idleTimeoutMs;
      const timerAt = this.#inFlight > 0
        ? Math.min(this.#rtoDeadline, this.#lossDeadline)
        : Infinity;
      await this.#wait(Math.min(timerAt, idleAt) - now);
    }
    this.#emitProgress(true);
  }

  async #finish(): Promise<void> {
    const s = this.context.settings;
    this.#digest = new Uint8Array(this.#hash.digest());
    let retry = Math.max(this.#cc.rto, s.minRtoMs);
    while (!this.#done) {
      this.#check();
      const now = this.context.clock.now();
      if (now - this.lastHeard >= s.idleTimeoutMs) {
        this.fail("peer-gone", "no confirmation from the receiver", true);
        this.#check();
      }
      void this.sendMessage({ type: PacketType.FIN, sha256: this.#digest });
      await this.#wait(Math.min(retry, this.lastHeard + s.idleTimeoutMs - now));
      retry = Math.min(retry * 2, s.maxRtoMs);
    }
    this.#check();
  }

  /** The next chunk to send: the oldest lost one, else a new one inside the window; -1 if none. */
  #pickChunk(): number {
    while (this.#lostHead < this.#lost.length) {
      const chunk = this.#lost[this.#lostHead]!;
      if (chunk >= this.#cumulative && this.#state[chunk % this.#window] === LOST) return chunk;
      this.#lostHead++;
    }
    if (this.#lostHead > 0) {
      this.#lost = [];
      this.#lostHead = 0;
    }
    if (this.#nextNew < this.#chunks && this.#nextNew < this.#cumulative + this.#window) {
      return this.#nextNew;
    }
    return -1;
  }

  async #sendChunk(chunk: number): Promise<void> {
    const size = this.#chunkSize;
    const length = chunk === this.#chunks - 1 ? this.#size - chunk * size : size;
    const slot = chunk % this.#window;
    const first = chunk === this.#nextNew;
    let buffer = this.#packets[slot];
    if (first) {
      if (chunk >= this.#blockFirst + this.#blockChunks) {
        try {
          await this.#nextBlock();
        } catch (error) {
          this.fail("disk-error", errorText(error), true);
          return;
        }
        if (this.#failure !== undefined) return;
      }
      if (buffer === undefined) {
        buffer = newPacket(PacketType.DATA, this.direction, this.idBytes, 0, 4 + size);
        this.#packets[slot] = buffer;
      }
      const from = (chunk - this.#blockFirst) * size;
      buffer.set(this.#block.subarray(from, from + length), HEADER_BYTES + 4);
      new DataView(buffer.buffer).setUint32(HEADER_BYTES, chunk);
      this.#nextNew++;
    } else {
      // Only a lost chunk inside the window is resent; its datagram is still in its slot.
      if (chunk < this.#cumulative || this.#state[slot] !== LOST || buffer === undefined) return;
      this.#retransmissions++;
    }
    const packet = length === size ? buffer : buffer.subarray(0, OVERHEAD_BYTES + 4 + length);
    const pn = this.nextPacketNumber();
    new DataView(buffer.buffer).setUint32(20, pn);
    sealPacket(this.key, packet);
    const now = this.context.clock.now();
    this.#state[slot] = IN_FLIGHT;
    this.#slotPn[slot] = pn;
    this.#sentLog.push(pn, chunk);
    this.#pnSentAt[pn % PN_RING] = now;
    if (this.#inFlight === 0) this.#rtoDeadline = now + this.#cc.rto;
    this.#inFlight++;
    this.#cc.onSend();
    this.#dataSent++;
    this.counters.datagramsSent++;
    await this.context.send(packet, this.peerAddress);
  }

  /** Moves to the next read-ahead block (hashing it: blocks come in file order). */
  async #nextBlock(): Promise<void> {
    const first = this.#blockFirst + this.#blockChunks;
    if (this.#readAhead === undefined || this.#readAheadFirst !== first) {
      this.#startReadAhead(first);
    }
    const block = await this.#readAhead!;
    this.#readAhead = undefined;
    if (block instanceof Error) throw block;
    if (this.#block.length > 0) this.#spare = this.#block;
    this.#block = block;
    this.#blockFirst = first;
    this.#blockChunks = Math.ceil(block.length / this.#chunkSize);
    this.#hash.update(block);
    const next = first + this.#blockChunks;
    if (next < this.#chunks) this.#startReadAhead(next);
  }

  #startReadAhead(first: number): void {
    const perBlock = Math.max(1, Math.floor(READ_BLOCK_BYTES / this.#chunkSize));
    const offset = first * this.#chunkSize;
    const bytes = Math.min(perBlock * this.#chunkSize, this.#size - offset);
    const spare = this.#spare;
    this.#spare = undefined;
    const into = spare !== undefined && spare.buffer.byteLength >= bytes
      ? new Uint8Array(spare.buffer, 0, bytes)
      : new Uint8Array(bytes);
    this.#readAheadFirst = first;
    this.#readAhead = this.#readFull(into).then(() => into, (error) => toError(error));
  }

  /** Reads exactly `into.length` bytes from the current position (reads are sequential). */
  async #readFull(into: Uint8Array): Promise<void> {
    const file = this.#file!;
    let done = 0;
    while (done < into.length) {
      const n = await file.read(into.subarray(done));
      if (n === null) throw new Error(`${this.#path} shrank while being sent`);
      done += n;
    }
  }

  #onAck(cumulative: number, echoPn: number, ackDelayUs: number, bitmap: Uint8Array): void {
    const now = this.context.clock.now();
    // An ACK cannot cover chunks never sent; such a claim is a bug or an attack: ignore it.
    if (cumulative > this.#nextNew) return;
    const used = this.packetNumbersUsed;
    if (echoPn > this.#lastEchoPn && echoPn < used && echoPn >= used - PN_RING) {
      this.#lastEchoPn = echoPn;
      const sample = now - this.#pnSentAt[echoPn % PN_RING]! - ackDelayUs / 1000;
      this.#cc.onRttSample(Math.max(sample, 0.01));
    }
    let newlyAcked = 0;
    for (let c = this.#cumulative; c < cumulative; c++) newlyAcked += this.#ackChunk(c);
    const base = cumulative & ~7;
    const limit = Math.min(this.#nextNew, this.#cumulative + this.#window);
    for (let i = 0; i < bitmap.length; i++) {
      const bits = bitmap[i]!;
      if (bits === 0) continue;
      for (let b = 0; b < 8; b++) {
        if ((bits & (1 << b)) === 0) continue;
        const c = base + i * 8 + b;
        if (c >= this.#cumulative && c < limit) newlyAcked += this.#ackChunk(c);
      }
    }
    while (
      this.#cumulative < this.#nextNew && this.#state[this.#cumulative % this.#window] === ACKED
    ) {
      this.#state[this.#cumulative % this.#window] = UNSENT;
      this.#cumulative++;
    }
    if (newlyAcked > 0) {
      this.lastHeard = now;
      this.#cc.onAck(newlyAcked);
      this.#rtoDeadline = now + this.#cc.rto;
      this.#detectLoss(now);
      this.#emitProgress(false);
    }
    this.#wake();
  }

  /** Marks chunk acknowledged; returns 1 if it was in flight. */
  #ackChunk(chunk: number): number {
    const slot = chunk % this.#window;
    const state = this.#state[slot];
    if (state === ACKED) return 0;
    let counted = 0;
    if (state === IN_FLIGHT) {
      this.#inFlight--;
      counted = 1;
      if (this.#slotPn[slot]! > this.#largestAckedPn) this.#largestAckedPn = this.#slotPn[slot]!;
    }
    this.#state[slot] = ACKED;
    return counted;
  }

  /** Datagrams sent REORDER_THRESHOLD before the newest acknowledged one are lost. */
  #detectLoss(now: number): void {
    const log = this.#sentLog;
    let head = this.#sentLogHead;
    const largest = this.#largestAckedPn;
    // Time threshold as in QUIC: overtaken and older than 9/8 of a round trip means lost.
    const lossDelay = Math.max(1.125 * this.#cc.srtt, 1);
    this.#lossDeadline = Infinity;
    while (head < log.length) {
      const pn = log[head]!;
      if (pn >= largest) break;
      if (pn + REORDER_THRESHOLD >= largest) {
        const sentAt = this.#pnSentAt[pn % PN_RING]!;
        if (sentAt > now - lossDelay) {
          this.#lossDeadline = sentAt + lossDelay;
          break;
        }
      }
      const chunk = log[head + 1]!;
      head += 2;
      if (chunk < this.#cumulative) continue;
      const slot = chunk % this.#window;
      if (this.#state[slot] !== IN_FLIGHT || this.#slotPn[slot] !== pn) continue;
      this.#state[slot] = LOST;
      this.#inFlight--;
      this.#lost.push(chunk);
      // The controller cuts once for all the losses of one flight.
      this.#cc.onLoss(this.#pnSentAt[pn % PN_RING]!, now);
    }
    this.#sentLogHead = head;
    if (head > 65536) {
      this.#sentLog = log.slice(head);
      this.#sentLogHead = 0;
    }
  }

  #onRto(now: number): void {
    this.#lost = this.#lost.slice(this.#lostHead);
    this.#lostHead = 0;
    for (let c = this.#cumulative; c < this.#nextNew; c++) {
      const slot = c % this.#window;
      if (this.#state[slot] === IN_FLIGHT) {
        this.#state[slot] = LOST;
        this.#lost.push(c);
      }
    }
    this.#lost.sort((a, b) => a - b);
    this.#inFlight = 0;
    this.#cc.onTimeout(now);
    this.#rtoDeadline = now + this.#cc.rto;
  }

  #emitProgress(final: boolean): void {
    reportProgress(
      this.context,
      this.#progressThrottle,
      {
        ticketId: this.ticket.id,
        direction: "send",
        peer: this.ticket.peer,
        fileName: this.fileName,
        bytesDone: Math.min(this.#cumulative * this.#chunkSize, this.#size),
        bytesTotal: this.#size,
      },
      this.#started,
      final,
    );
  }

  #wait(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.#waiter = resolve;
      this.#waitTimer = this.context.clock.setTimeout(() => {
        this.#waitTimer = undefined;
        const waiter = this.#waiter;
        this.#waiter = undefined;
        waiter?.();
      }, Math.max(0, ms));
    });
  }

  #wake(): void {
    const waiter = this.#waiter;
    if (waiter === undefined) return;
    this.#clearWait();
    waiter();
  }

  #clearWait(): void {
    if (this.#waitTimer !== undefined) this.context.clock.clearTimeout(this.#waitTimer);
    this.#waitTimer = undefined;
    this.#waiter = undefined;
  }
}

function toError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}

/** The message of an unknown thrown value. */
export function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
