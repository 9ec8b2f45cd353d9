/**
 * The one place where bytes become frames: newline-delimited UTF-8, each frame at most
 * `maxBytes` long. An oversized or invalid frame is an error, never an unbounded buffer.
 */

/** The largest frame, in bytes without its newline, either side accepts. */
export const MAX_FRAME_BYTES = 64 * 1024;

const NEWLINE = 0x0a;

/** Why a byte stream could not be split into frames. */
export class FrameError extends Error {
  constructor(readonly code: "frame-too-large" | "invalid-utf8", message: string) {
    super(message);
    this.name = "FrameError";
  }
}

// Decoding whole frames keeps no state between calls, so every decoder shares one.
const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** Splits a byte stream into text frames. Feed it chunks; it returns the complete frames. */
export class FrameDecoder {
  readonly #maxBytes: number;
  #pending: Uint8Array[] = [];
  #pendingBytes = 0;

  constructor(maxBytes: number = MAX_FRAME_BYTES) {
    this.#maxBytes = maxBytes;
  }

  /** Bytes held back waiting for a newline. */
  get bufferedBytes(): number {
    return this.#pendingBytes;
  }

  /** Takes the next chunk and returns every frame it completes, in order. */
  push(chunk: Uint8Array): string[] {
    const frames: string[] = [];
    let start = 0;
    while (start < chunk.length) {
      const end = chunk.indexOf(NEWLINE, start);
      if (end < 0) {
        this.#hold(chunk.subarray(start));
        break;
      }
      frames.push(this.#finish(chunk.subarray(start, end)));
      start = end + 1;
    }
    return frames;
  }

  #hold(part: Uint8Array): void {
    this.#pendingBytes += part.length;
    // One byte of slack, only for the CR of a CRLF ending whose LF has not arrived yet.
    const crWaiting = this.#pendingBytes === this.#maxBytes + 1 && part[part.length - 1] === 0x0d;
    if (this.#pendingBytes > this.#maxBytes && !crWaiting) throw this.#tooLarge();
    // Copy: the caller may reuse its read buffer.
    this.#pending.push(part.slice());
  }

  #finish(tail: Uint8Array): string {
    const size = this.#pendingBytes + tail.length;
    // A CRLF line ending's CR is not part of the frame.
    const crlf = tail.length > 0 ? tail[tail.length - 1] === 0x0d : this.#endsWithCr();
    if (size - (crlf ? 1 : 0) > this.#maxBytes) throw this.#tooLarge();
    let bytes = tail;
    if (this.#pending.length > 0) {
      bytes = new Uint8Array(size);
      let offset = 0;
      for (const part of this.#pending) {
        bytes.set(part, offset);
        offset += part.length;
      }
      bytes.set(tail, offset);
      this.#pending = [];
      this.#pendingBytes = 0;
    }
    if (bytes.length > 0 && bytes[bytes.length - 1] === 0x0d) bytes = bytes.subarray(0, -1);
    try {
      return utf8.decode(bytes);
    } catch {
      throw new FrameError("invalid-utf8", "Frame is not valid UTF-8");
    }
  }

  #endsWithCr(): boolean {
    const last = this.#pending[this.#pending.length - 1];
    return last !== undefined && last[last.length - 1] === 0x0d;
  }

  #tooLarge(): FrameError {
    return new FrameError("frame-too-large", `Frame exceeds ${this.#maxBytes} bytes`);
  }
}

/** The smallest and the largest read buffer of a `ReadBuffer`, by default. */
export const READ_BUFFER_BYTES = { min: 1024, max: 64 * 1024 };

/**
 * A connection's read buffer, small while frames are (an idle connection holds one for its
 * pending read, so thousands of them must cost little). A read that fills it doubles it, up to
 * `max`, so a long frame takes few reads; a read that fills less than a quarter of a grown
 * buffer puts it back to `min`.
 */
export class ReadBuffer {
  readonly #min: number;
  readonly #max: number;
  #bytes: Uint8Array;

  constructor(sizes: { min: number; max: number } = READ_BUFFER_BYTES) {
    this.#min = sizes.min;
    this.#max = Math.max(sizes.min, sizes.max);
    this.#bytes = new Uint8Array(this.#min);
  }

  /** Where the next read goes. */
  get bytes(): Uint8Array {
    return this.#bytes;
  }

  /**
   * Takes note that a read put `size` bytes into `bytes`, and returns them. They stay valid until
   * the next read: the caller must use or copy them first (FrameDecoder copies what it holds).
   */
  filled(size: number): Uint8Array {
    const read = this.#bytes.subarray(0, size);
    const length = this.#bytes.length;
    if (size === length && length < this.#max) {
      this.#bytes = new Uint8Array(Math.min(this.#max, length * 2));
    } else if (length > this.#min && size < length / 4) {
      this.#bytes = new Uint8Array(this.#min);
    }
    return read;
  }
}

const encoder = new TextEncoder();

/** Encodes one frame's text with its terminating newline. */
export function encodeFrameText(text: string): Uint8Array {
  return encoder.encode(text + "\n");
}
