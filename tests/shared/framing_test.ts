/**
 * Newline-delimited frames of lib/shared/framing.ts: splitting, size limit and UTF-8 checks, and
 * the read buffer that grows for long frames.
 */
import assert from "node:assert/strict";
import {
  encodeFrameText,
  FrameDecoder,
  FrameError,
  MAX_FRAME_BYTES,
  READ_BUFFER_BYTES,
  ReadBuffer,
} from "../../lib/shared/framing.ts";

const encoder = new TextEncoder();

function bytes(...parts: (string | number[])[]): Uint8Array {
  const chunks = parts.map((part) => typeof part === "string" ? encoder.encode(part) : part);
  const out = new Uint8Array(chunks.reduce((sum, chunk) => sum + chunk.length, 0));
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}

function pushAll(decoder: FrameDecoder, chunks: Uint8Array[]): string[] {
  return chunks.flatMap((chunk) => decoder.push(chunk));
}

function assertFrameError(fn: () => unknown, code: FrameError["code"]): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof FrameError, `expected a FrameError, got ${error}`);
    assert.equal(error.code, code);
    return true;
  });
}

Deno.test("FrameDecoder.push() returns nothing until a newline arrives", () => {
  const decoder = new FrameDecoder();
  assert.deepEqual(decoder.push(bytes("hello")), []);
  assert.equal(decoder.bufferedBytes, 5);
  assert.deepEqual(decoder.push(bytes("\n")), ["hello"]);
  assert.equal(decoder.bufferedBytes, 0);
});

Deno.test("FrameDecoder.push() joins a frame split across many chunks", () => {
  const decoder = new FrameDecoder();
  const chunks = [...'{"t":"ping"}\n'].map((c) => bytes(c));
  assert.deepEqual(pushAll(decoder, chunks), ['{"t":"ping"}']);
});

Deno.test("FrameDecoder.push() returns several frames from one chunk, in order", () => {
  const decoder = new FrameDecoder();
  assert.deepEqual(decoder.push(bytes("one\ntwo\nthree\nfou")), ["one", "two", "three"]);
  assert.deepEqual(decoder.push(bytes("r\n")), ["four"]);
});

Deno.test("FrameDecoder.push() strips a CR before the newline", () => {
  const decoder = new FrameDecoder();
  assert.deepEqual(decoder.push(bytes("a\r\nb\r\n")), ["a", "b"]);
});

Deno.test("FrameDecoder.push() strips a CR that ended the previous chunk", () => {
  const decoder = new FrameDecoder();
  assert.deepEqual(decoder.push(bytes("abc\r")), []);
  assert.deepEqual(decoder.push(bytes("\n")), ["abc"]);
});

Deno.test("FrameDecoder.push() keeps a CR that is not at the end of the frame", () => {
  const decoder = new FrameDecoder();
  assert.deepEqual(decoder.push(bytes("a\rb\n")), ["a\rb"]);
});

Deno.test("FrameDecoder.push() returns empty frames for blank lines", () => {
  const decoder = new FrameDecoder();
  assert.deepEqual(decoder.push(bytes("\n\r\nx\n\n")), ["", "", "x", ""]);
});

Deno.test("FrameDecoder.push() copies held bytes, so the caller may reuse its buffer", () => {
  const decoder = new FrameDecoder();
  const buffer = bytes("abc");
  decoder.push(buffer);
  buffer.set(bytes("xyz"));
  assert.deepEqual(decoder.push(bytes("\n")), ["abc"]);
});

Deno.test("FrameDecoder.push() accepts a frame of exactly the maximum size", () => {
  const decoder = new FrameDecoder(10);
  assert.deepEqual(decoder.push(bytes("0123456789\n")), ["0123456789"]);
});

Deno.test("FrameDecoder.push() accepts a frame of exactly the maximum size in small chunks", () => {
  const decoder = new FrameDecoder(10);
  const chunks = [..."0123456789\n"].map((c) => bytes(c));
  assert.deepEqual(pushAll(decoder, chunks), ["0123456789"]);
});

Deno.test("FrameDecoder.push() rejects a frame one byte over the maximum", () => {
  const decoder = new FrameDecoder(10);
  assertFrameError(() => decoder.push(bytes("0123456789A\n")), "frame-too-large");
});

Deno.test("FrameDecoder.push() rejects an oversized frame whose newline comes in a later chunk", () => {
  const decoder = new FrameDecoder(10);
  assert.deepEqual(decoder.push(bytes("01234")), []);
  assertFrameError(() => decoder.push(bytes("56789A\n")), "frame-too-large");
});

Deno.test("FrameDecoder.push() rejects an endless line before buffering more than the maximum", () => {
  const decoder = new FrameDecoder(10);
  let pushed = 0;
  assertFrameError(() => {
    for (;;) {
      decoder.push(bytes("x"));
      pushed++;
      assert.ok(decoder.bufferedBytes <= 10);
      assert.ok(pushed < 1000, "never threw");
    }
  }, "frame-too-large");
  assert.equal(pushed, 10);
});

Deno.test("FrameDecoder.push() rejects one big chunk with no newline at once", () => {
  const decoder = new FrameDecoder();
  assertFrameError(() => decoder.push(new Uint8Array(MAX_FRAME_BYTES + 1)), "frame-too-large");
});

Deno.test("FrameDecoder defaults to MAX_FRAME_BYTES", () => {
  const decoder = new FrameDecoder();
  const line = "a".repeat(MAX_FRAME_BYTES);
  assert.deepEqual(decoder.push(bytes(line, "\n")), [line]);
  assertFrameError(() => decoder.push(bytes(line, "a\n")), "frame-too-large");
});

Deno.test("FrameDecoder.push() counts bytes, not characters", () => {
  const decoder = new FrameDecoder(4);
  assert.deepEqual(decoder.push(bytes("éé\n")), ["éé"]); // 4 bytes
  assertFrameError(() => decoder.push(bytes("ééé\n")), "frame-too-large"); // 6 bytes
});

Deno.test({
  name: "FrameDecoder.push() accepts a frame of exactly the maximum size ending in CRLF",
  fn() {
    const decoder = new FrameDecoder(10);
    assert.deepEqual(decoder.push(bytes("0123456789\r\n")), ["0123456789"]);
  },
});

Deno.test("FrameDecoder.push() decodes a multi-byte character split across chunks", () => {
  const decoder = new FrameDecoder();
  const euro = encoder.encode("€"); // e2 82 ac
  assert.deepEqual(decoder.push(euro.subarray(0, 1)), []);
  assert.deepEqual(decoder.push(euro.subarray(1, 2)), []);
  assert.deepEqual(decoder.push(bytes([...euro.subarray(2)], "\n")), ["€"]);
});

Deno.test("FrameDecoder.push() keeps a leading byte-order mark", () => {
  const decoder = new FrameDecoder();
  assert.deepEqual(decoder.push(bytes([0xef, 0xbb, 0xbf], "x\n")), ["\ufeffx"]);
});

const INVALID_UTF8: [string, number[]][] = [
  ["an overlong slash (c0 af)", [0xc0, 0xaf]],
  ["an overlong NUL (c0 80)", [0xc0, 0x80]],
  ["a three-byte overlong (e0 80 af)", [0xe0, 0x80, 0xaf]],
  ["a four-byte overlong (f0 80 80 af)", [0xf0, 0x80, 0x80, 0xaf]],
  ["an encoded high surrogate (ed a0 80)", [0xed, 0xa0, 0x80]],
  ["an encoded low surrogate (ed bf bf)", [0xed, 0xbf, 0xbf]],
  ["an encoded surrogate pair (ed a0 bd ed b8 80)", [0xed, 0xa0, 0xbd, 0xed, 0xb8, 0x80]],
  ["a truncated two-byte sequence", [0x61, 0xc3]],
  ["a truncated three-byte sequence", [0xe2, 0x82]],
  ["a truncated four-byte sequence", [0xf0, 0x9f, 0x98]],
  ["a lone continuation byte", [0x80]],
  ["a code point above U+10FFFF (f4 90 80 80)", [0xf4, 0x90, 0x80, 0x80]],
  ["an invalid byte (ff)", [0xff]],
  ["an invalid byte (fe)", [0xfe]],
  ["a truncated sequence before the CR", [0xe2, 0x82, 0x0d]],
];

for (const [what, sequence] of INVALID_UTF8) {
  Deno.test(`FrameDecoder.push() rejects ${what}`, () => {
    const decoder = new FrameDecoder();
    assertFrameError(() => decoder.push(bytes("ok", sequence, "\n")), "invalid-utf8");
  });
}

Deno.test("FrameDecoder.push() rejects invalid UTF-8 split across chunks", () => {
  const decoder = new FrameDecoder();
  assert.deepEqual(decoder.push(bytes([0xed])), []);
  assertFrameError(() => decoder.push(bytes([0xa0, 0x80], "\n")), "invalid-utf8");
});

Deno.test("FrameDecoder.push() decodes later frames after rejecting invalid UTF-8", () => {
  const decoder = new FrameDecoder();
  assertFrameError(() => decoder.push(bytes([0xe2, 0x82], "\n")), "invalid-utf8");
  assert.equal(decoder.bufferedBytes, 0);
  assert.deepEqual(decoder.push(bytes("fine\n")), ["fine"]);
});

Deno.test("FrameDecoder.push() accepts every valid width of UTF-8", () => {
  const decoder = new FrameDecoder();
  const text = "a é € 😀 \u{10ffff}";
  assert.deepEqual(decoder.push(bytes(text, "\n")), [text]);
});

Deno.test("encodeFrameText() encodes UTF-8 and appends one newline", () => {
  assert.deepEqual(encodeFrameText("hé"), new Uint8Array([0x68, 0xc3, 0xa9, 0x0a]));
  assert.deepEqual(encodeFrameText(""), new Uint8Array([0x0a]));
});

Deno.test("encodeFrameText() output decodes back to the same text", () => {
  const decoder = new FrameDecoder();
  const texts = ['{"t":"ping"}', "", "日本語 😀"];
  assert.deepEqual(pushAll(decoder, texts.map(encodeFrameText)), texts);
});

Deno.test("ReadBuffer doubles while reads fill it, up to its maximum", () => {
  const buffer = new ReadBuffer({ min: 4, max: 16 });
  assert.equal(buffer.bytes.length, 4);
  buffer.bytes.set([1, 2, 3, 4]);
  assert.deepEqual([...buffer.filled(4)], [1, 2, 3, 4]);
  assert.equal(buffer.bytes.length, 8);
  buffer.filled(8);
  assert.equal(buffer.bytes.length, 16);
  buffer.filled(16);
  assert.equal(buffer.bytes.length, 16);
});

Deno.test("ReadBuffer goes back to its minimum after a small read, and stays there", () => {
  const buffer = new ReadBuffer({ min: 4, max: 64 });
  for (const size of [4, 8, 16]) buffer.filled(size);
  assert.equal(buffer.bytes.length, 32);
  // A quarter or more of it keeps it.
  buffer.filled(8);
  assert.equal(buffer.bytes.length, 32);
  buffer.filled(7);
  assert.equal(buffer.bytes.length, 4);
  buffer.filled(1);
  assert.equal(buffer.bytes.length, 4);
});

Deno.test("ReadBuffer and FrameDecoder read a long frame in few reads, then shrink", () => {
  const buffer = new ReadBuffer();
  const decoder = new FrameDecoder();
  const long = new TextEncoder().encode(`{"t":"cmd","line":"${"x".repeat(40_000)}"}\n`);
  const sizes: number[] = [];
  let frames: string[] = [];
  for (let offset = 0; offset < long.length;) {
    // A socket read: as much as the buffer holds of what has arrived.
    const size = Math.min(buffer.bytes.length, long.length - offset);
    buffer.bytes.set(long.subarray(offset, offset + size));
    sizes.push(buffer.bytes.length);
    frames = decoder.push(buffer.filled(size));
    offset += size;
  }
  assert.equal(frames.length, 1);
  assert.equal(frames[0]!.length, long.length - 1);
  assert.deepEqual(sizes, [1024, 2048, 4096, 8192, 16_384, 32_768]);
  buffer.bytes.set(new TextEncoder().encode('{"t":"ping"}\n'));
  assert.deepEqual(decoder.push(buffer.filled(13)), ['{"t":"ping"}']);
  assert.equal(buffer.bytes.length, READ_BUFFER_BYTES.min);
});
