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

/** Splits a byte stream into text frames. Feed it chunks; it returns the complete frames. */
export class FrameDecoder {
  readonly #maxBytes: number;
  readonly #decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
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
      return this.#decoder.decode(bytes);
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

const encoder = new TextEncoder();

/** Encodes one frame's text with its terminating newline. */
export function encodeFrameText(text: string): Uint8Array {
  return encoder.encode(text + "\n");
}
