/**
 * The receiving side of a file transfer: answers the offer, writes chunks at their offsets into
 * a hidden temporary file, acknowledges selectively, verifies the whole-file SHA-256 and moves
 * the file into place without overwriting anything.
 *
 * @module
 */

import { createHash, type Hash, timingSafeEqual } from "node:crypto";
import type { TimerHandle } from "./clock.ts";
import { formatBytes } from "./bytes.ts";
import { REVOKED_DETAIL, type TransferFailureReason } from "./errors.ts";
import { errorText, MAX_WINDOW_CHUNKS } from "./file_sender.ts";
import { joinPath, moveIntoPlace, receivedFileName, safeBaseName } from "./safe_name.ts";
import { type NodeContext, reportProgress, Session } from "./session.ts";
import type { Ticket } from "./ticket.ts";
import { type Header, MAX_ACK_BITMAP_BYTES, type Message, PacketType } from "./wire.ts";

/** Prefix of temporary files in the download directory (hidden, named after the ticket). */
export const TEMP_FILE_PREFIX = ".toom-";
/** Suffix of temporary files. */
export const TEMP_FILE_SUFFIX = ".part";
/** Acknowledge at least every this many data datagrams. */
const ACK_EVERY = 2;
/** Longest an acknowledgement is held back, in ms. */
const ACK_DELAY_MS = 2;
/** Read size when hashing what is already on disk. */
const HASH_BLOCK_BYTES = 1 << 20;
/** Consecutive chunks are gathered into writes of about this size. */
const RUN_BYTES = 1 << 20;
/** Write buffers kept for reuse. */
const POOL_SIZE = 4;

/** A write: `length` bytes of `buffer` at `offset` in the file. */
interface Run {
  offset: number;
  length: number;
  buffer: Uint8Array;
}

type State = "waiting" | "opening" | "receiving" | "verifying" | "done" | "failed";

/** Drives one incoming file transfer. Created by `PeerNode.accept()` for a receiver ticket. */
export class FileReceiver extends Session {
  #state: State = "waiting";
  #fileName: string;
  #started: number;
  #tempPath: string;
  #file: Deno.FsFile | undefined;
  #size = 0;
  #chunkSize = 0;
  #chunks = 0;
  #window = 0;
  #received = new Uint8Array(0);
  #cumulative = 0;
  #bytesReceived = 0;
  #lastEcho = 0;
  #lastEchoAt = 0;
  #unacked = 0;
  #ackTimer: TimerHandle | undefined;
  #tickTimer: TimerHandle | undefined;
  #lingerTimer: TimerHandle | undefined;
  readonly #progressThrottle = { last: -Infinity };
  #writes: Run[] = [];
  /** The run being gathered (chunks that follow each other), not yet queued. */
  #run: Run | undefined;
  #pool: Uint8Array[] = [];
  /** The file is hashed in order: bytes [0, #hashed) are hashed. */
  #hash: Hash = createHash("sha256");
  #hashed = 0;
  #writeHead = 0;
  #bufferedBytes = 0;
  #writer: Promise<void> | undefined;
  #filePosition = 0;
  #cleanup: Promise<void> = Promise.resolve();
  #contacted = false;
  /** Why the offer was refused, if it was for its size. */
  #refused: "too-large" | "no-space" | undefined;

  /** Registers the ticket and waits for the sender's offer. */
  constructor(ticket: Ticket, context: NodeContext) {
    super(ticket, context);
    this.#started = context.clock.now();
    this.#fileName = safeBaseName(ticket.fileName ?? "file");
    this.#tempPath = joinPath(
      context.downloadDir,
      `${TEMP_FILE_PREFIX}${ticket.id}${TEMP_FILE_SUFFIX}`,
    );
    this.#scheduleTick();
  }

  override handle(message: Message, header: Header): void {
    this.#contacted = true;
    switch (message.type) {
      case PacketType.OFFER:
        this.#onOffer(message.size, message.chunkSize, message.name);
        break;
      case PacketType.DATA:
        if (this.#state === "receiving") {
          this.#onData(message.chunk, message.payload, header.packetNumber);
        }
        break;
      case PacketType.FIN:
        if (this.#state === "receiving" && this.#cumulative === this.#chunks) {
          void this.#verify(message.sha256.slice());
        } else if (this.#state === "receiving") {
          this.#sendAck();
        } else if (this.#state === "done") {
          void this.sendMessage({ type: PacketType.DONE });
        }
        break;
      case PacketType.ABORT:
        this.#fail(message.reason, message.detail ? `peer: ${message.detail}` : undefined, false);
        break;
      default:
        break;
    }
  }

  /**
   * Stops the transfer because the server revoked its ticket: the sender is told (`rejected`,
   * {@linkcode REVOKED_DETAIL}) and the partial file removed. False if it had ended already.
   */
  revoke(): boolean {
    if (this.#state === "done" || this.#state === "failed") return false;
    this.#fail("rejected", REVOKED_DETAIL, true);
    return true;
  }

  override shutdown(): Promise<void> {
    if (this.#state !== "done" && this.#state !== "failed") {
      void this.sendMessage({
        type: PacketType.ABORT,
        reason: "peer-gone",
        detail: "shutting down",
      });
      this.#fail("aborted", "the receiver is shutting down", false);
    }
    this.#finishLinger();
    return this.#cleanup;
  }

  #onOffer(size: number, chunkSize: number, name: string): void {
    if (this.#state === "receiving") {
      // Our ACCEPT was lost; say it again.
      void this.sendMessage({ type: PacketType.ACCEPT, window: this.#window });
      return;
    }
    if (this.#state !== "waiting") return;
    if (this.ticket.fileName === undefined) this.#fileName = safeBaseName(name);
    const limit = this.context.settings.maxFileBytes;
    if (size > limit) {
      this.#refused = "too-large";
      this.#fail("rejected", `${formatBytes(size)} is over the ${formatBytes(limit)} limit`, true);
      return;
    }
    this.#size = size;
    this.#chunkSize = chunkSize;
    this.#chunks = Math.ceil(size / chunkSize);
    if (this.#chunks > 0xffffffff) {
      this.#fail("rejected", "the file has too many chunks", true);
      return;
    }
    const byBytes = Math.floor(this.context.settings.receiveWindowBytes / chunkSize);
    this.#window = Math.max(16, Math.min(byBytes, MAX_WINDOW_CHUNKS));
    this.#received = new Uint8Array(Math.ceil(this.#chunks / 8) + 1);
    this.#state = "opening";
    void this.#open();
  }

  async #open(): Promise<void> {
    // Other transfers may be filling the same disk: this catches a file that cannot fit at all.
    const free = await this.context.freeBytes(this.context.downloadDir);
    if (this.#state !== "opening") return;
    if (free !== undefined && this.#size > free) {
      this.#refused = "no-space";
      this.#fail(
        "rejected",
        `${formatBytes(this.#size)} does not fit in the ${formatBytes(free)} free`,
        true,
      );
      return;
    }
    try {
      this.#file = await Deno.open(this.#tempPath, { read: true, write: true, createNew: true });
    } catch (error) {
      this.#fail("disk-error", errorText(error), true);
      return;
    }
    if (this.#state !== "opening") {
      // Failed or shut down while opening: the cleanup path could not see the file yet.
      this.#cleanup = this.#cleanup.then(() => this.#removeTemp());
      return;
    }
    this.#state = "receiving";
    this.lastHeard = this.context.clock.now();
    void this.sendMessage({ type: PacketType.ACCEPT, window: this.#window });
    this.#emitProgress(true);
  }

  #onData(chunk: number, payload: Uint8Array, pn: number): void {
    const expected = chunk === this.#chunks - 1
      ? this.#size - chunk * this.#chunkSize
      : this.#chunkSize;
    if (chunk >= this.#chunks || payload.length !== expected) return;
    this.#lastEcho = pn;
    this.#lastEchoAt = this.context.clock.now();
    const bit = 1 << (chunk & 7);
    if ((this.#received[chunk >> 3]! & bit) !== 0 || chunk < this.#cumulative) {
      // A duplicate: the sender missed our ACK, so send one now.
      this.#sendAck();
      return;
    }
    if (chunk >= this.#cumulative + this.#window) return;
    if (this.#bufferedBytes + payload.length > this.context.settings.maxBufferedWriteBytes) {
      // The disk is behind: drop it unacknowledged so the sender backs off and resends it.
      return;
    }
    this.#received[chunk >> 3]! |= bit;
    const inOrder = chunk === this.#cumulative;
    while (
      this.#cumulative < this.#chunks &&
      (this.#received[this.#cumulative >> 3]! & (1 << (this.#cumulative & 7))) !== 0
    ) {
      this.#cumulative++;
    }
    this.#bytesReceived += payload.length;
    this.#bufferedBytes += payload.length;
    this.#gather(chunk * this.#chunkSize, payload);
    this.#unacked++;
    if (!inOrder || this.#unacked >= ACK_EVERY || this.#cumulative === this.#chunks) {
      this.#sendAck();
    } else if (this.#ackTimer === undefined) {
      this.#ackTimer = this.context.clock.setTimeout(() => {
        this.#ackTimer = undefined;
        this.#sendAck();
      }, ACK_DELAY_MS);
    }
    this.#emitProgress(false);
  }

  /** Copies a new chunk into the run it extends (payload is only valid during dispatch). */
  #gather(offset: number, payload: Uint8Array): void {
    let run = this.#run;
    if (
      run !== undefined &&
      (offset !== run.offset + run.length || run.length + payload.length > run.buffer.length)
    ) {
      this.#flushRun();
      run = undefined;
    }
    if (run === undefined) {
      const bytes = Math.max(this.#chunkSize, RUN_BYTES - RUN_BYTES % this.#chunkSize);
      const buffer = this.#pool.pop() ?? new Uint8Array(bytes);
      run = { offset, length: 0, buffer };
      this.#run = run;
    }
    run.buffer.set(payload, run.length);
    run.length += payload.length;
    if (run.length + this.#chunkSize > run.buffer.length) this.#flushRun();
  }

  /** Queues the run being gathered for writing. */
  #flushRun(): void {
    const run = this.#run;
    if (run === undefined) return;
    this.#run = undefined;
    this.#writes.push(run);
    if (this.#writer === undefined) this.#writer = this.#drainWrites();
  }

  #sendAck(): void {
    if (this.#ackTimer !== undefined) {
      this.context.clock.clearTimeout(this.#ackTimer);
      this.#ackTimer = undefined;
    }
    this.#unacked = 0;
    const first = this.#cumulative >> 3;
    let last = first;
    // Report received chunks above the cumulative point, up to the last one received.
    const end = Math.min(first + MAX_ACK_BITMAP_BYTES, this.#received.length);
    for (let i = first; i < end; i++) if (this.#received[i] !== 0) last = i + 1;
    const delay = Math.round((this.context.clock.now() - this.#lastEchoAt) * 1000);
    void this.sendMessage({
      type: PacketType.ACK,
      cumulative: this.#cumulative,
      echoPn: this.#lastEcho,
      ackDelayUs: Math.max(0, Math.min(delay, 0xffffffff)),
      bitmap: this.#received.subarray(first, Math.max(last, first)),
    });
  }

  async #drainWrites(): Promise<void> {
    try {
      while (this.#state !== "failed") {
        if (this.#writeHead >= this.#writes.length) {
          // Everything queued is on disk: hash what lies behind a filled hole, a block at a time.
          const onDisk = Math.min(
            this.#cumulative * this.#chunkSize,
            this.#size,
            this.#run?.offset ?? Infinity,
          );
          if (onDisk - this.#hashed < HASH_BLOCK_BYTES) break;
          await this.#hashFromDisk(this.#hashed + HASH_BLOCK_BYTES);
          continue;
        }
        const run = this.#writes[this.#writeHead]!;
        this.#writes[this.#writeHead++] = undefined!;
        const file = this.#file!;
        if (this.#filePosition !== run.offset) {
          await file.seek(run.offset, Deno.SeekMode.Start);
        }
        const data = run.buffer.subarray(0, run.length);
        let done = 0;
        while (done < data.length) done += await file.write(data.subarray(done));
        this.#filePosition = run.offset + data.length;
        this.#bufferedBytes -= data.length;
        if (run.offset === this.#hashed) {
          this.#hash.update(data);
          this.#hashed += data.length;
        }
        if (this.#pool.length < POOL_SIZE) this.#pool.push(run.buffer);
        if (this.#writeHead > 4096) {
          this.#writes = this.#writes.slice(this.#writeHead);
          this.#writeHead = 0;
        }
      }
    } catch (error) {
      this.#filePosition = -1;
      this.#fail("disk-error", errorText(error), true);
    } finally {
      this.#writer = undefined;
    }
  }

  /** Hashes the file as it is on disk from `#hashed` up to `end` (or the end of the file). */
  async #hashFromDisk(end: number): Promise<void> {
    const file = this.#file!;
    const block = this.#pool.pop() ??
      new Uint8Array(Math.min(HASH_BLOCK_BYTES, Math.max(this.#size, 1)));
    try {
      await file.seek(this.#hashed, Deno.SeekMode.Start);
      this.#filePosition = -1;
      while (this.#hashed < end) {
        const n = await file.read(block.subarray(0, Math.min(block.length, end - this.#hashed)));
        if (n === null) break;
        this.#hash.update(block.subarray(0, n));
        this.#hashed += n;
      }
    } finally {
      if (this.#pool.length < POOL_SIZE) this.#pool.push(block);
    }
  }

  async #verify(expected: Uint8Array): Promise<void> {
    this.#state = "verifying";
    this.#clearTimers();
    try {
      this.#flushRun();
      if (this.#writer === undefined && this.#writeHead < this.#writes.length) {
        this.#writer = this.#drainWrites();
      }
      while (this.#writer !== undefined) await this.#writer;
      if (this.#state !== "verifying") return;
      // Whatever was not hashed from memory as it was written is hashed from the disk.
      await this.#hashFromDisk(this.#size);
      if (this.#state !== "verifying") return;
      const file = this.#file!;
      const actual = this.#hash.digest();
      if (this.#hashed !== this.#size || !timingSafeEqual(actual, expected)) {
        this.#fail("integrity", "SHA-256 mismatch", true);
        return;
      }
      file.close();
      this.#file = undefined;
      const savedAs = await moveIntoPlace(
        this.#tempPath,
        this.context.downloadDir,
        receivedFileName(this.ticket.peer, this.#fileName),
      );
      if (this.#state !== "verifying") {
        // Failed meanwhile (revoked, shut down): no file appears that was not reported.
        await Deno.remove(savedAs).catch(() => {});
        return;
      }
      this.#state = "done";
      void this.sendMessage({ type: PacketType.DONE });
      this.#emitProgress(true);
      this.context.emit("onFileReceived", {
        ticketId: this.ticket.id,
        from: this.ticket.peer,
        fileName: this.#fileName,
        savedAs,
        bytes: this.#size,
        elapsedMs: this.context.clock.now() - this.#started,
      });
      // Stay a while to answer a FIN whose DONE was lost.
      this.#lingerTimer = this.context.clock.setTimeout(
        () => this.#finishLinger(),
        this.context.settings.lingerMs,
      );
    } catch (error) {
      this.#fail("disk-error", errorText(error), true);
    }
  }

  #finishLinger(): void {
    if (this.#lingerTimer !== undefined) this.context.clock.clearTimeout(this.#lingerTimer);
    this.#lingerTimer = undefined;
    if (this.#state === "done") this.context.remove(this);
  }

  #fail(reason: TransferFailureReason, detail: string | undefined, notifyPeer: boolean): void {
    if (this.#state === "done" || this.#state === "failed") return;
    const hadFile = this.#state !== "waiting";
    this.#state = "failed";
    this.#clearTimers();
    if (notifyPeer) void this.sendMessage({ type: PacketType.ABORT, reason, detail: detail ?? "" });
    this.context.remove(this);
    const writer = this.#writer;
    this.#cleanup = (async () => {
      await writer;
      if (hadFile) await this.#removeTemp();
    })();
    const failed = {
      ticketId: this.ticket.id,
      peer: this.ticket.peer,
      fileName: this.#fileName,
      direction: "receive" as const,
      reason,
      ...(detail === undefined ? {} : { detail }),
      ...(this.#refused === undefined ? {} : { refused: this.#refused }),
    };
    void this.#cleanup.then(() => this.context.emit("onTransferFailed", failed));
  }

  async #removeTemp(): Promise<void> {
    try {
      this.#file?.close();
    } catch {
      // Already closed.
    }
    this.#file = undefined;
    try {
      await Deno.remove(this.#tempPath);
    } catch {
      // Never created, or already moved into place.
    }
  }

  /** Checks the handshake and idle deadlines a few times per idle period. */
  #scheduleTick(): void {
    const s = this.context.settings;
    const period = Math.max(10, Math.min(s.idleTimeoutMs, s.handshakeTimeoutMs) / 4);
    this.#tickTimer = this.context.clock.setTimeout(() => {
      this.#tickTimer = undefined;
      const now = this.context.clock.now();
      if (this.#state === "waiting" && now - this.#started >= s.handshakeTimeoutMs) {
        this.#fail("timed-out", "no offer from the sender", true);
        return;
      }
      if (this.#state === "receiving" && now - this.lastHeard >= s.idleTimeoutMs) {
        const reason = this.#contacted ? "peer-gone" : "timed-out";
        this.#fail(reason, "the sender stopped sending", true);
        return;
      }
      if (this.#state === "waiting" || this.#state === "opening" || this.#state === "receiving") {
        this.#scheduleTick();
      }
    }, period);
  }

  #clearTimers(): void {
    const clock = this.context.clock;
    if (this.#ackTimer !== undefined) clock.clearTimeout(this.#ackTimer);
    if (this.#tickTimer !== undefined) clock.clearTimeout(this.#tickTimer);
    this.#ackTimer = undefined;
    this.#tickTimer = undefined;
  }

  #emitProgress(final: boolean): void {
    reportProgress(
      this.context,
      this.#progressThrottle,
      {
        ticketId: this.ticket.id,
        direction: "receive",
        peer: this.ticket.peer,
        fileName: this.#fileName,
        bytesDone: this.#bytesReceived,
        bytesTotal: this.#size,
      },
      this.#started,
      final,
    );
  }
}
