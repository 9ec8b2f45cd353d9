/** Connections of lib/shared/transport.ts: the in-memory pair, and streams over read/write. */
import assert from "node:assert/strict";
import {
  type Connection,
  memoryPair,
  streamConnection,
  writeAll,
} from "../../lib/shared/transport.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

async function readText(conn: Connection, size = 64): Promise<string | null> {
  const buffer = new Uint8Array(size);
  const read = await conn.read(buffer);
  return read === null ? null : decoder.decode(buffer.subarray(0, read));
}

Deno.test("memoryPair() carries writes of one end to reads of the other, both ways", async () => {
  const [a, b] = memoryPair();
  assert.equal(await a.write(encoder.encode("hello")), 5);
  assert.equal(await readText(b), "hello");
  await b.write(encoder.encode("back"));
  assert.equal(await readText(a), "back");
  a.close();
});

Deno.test("memoryPair() read waits for a write, and gives a long chunk in parts", async () => {
  const [a, b] = memoryPair();
  const pending = readText(b, 4);
  await a.write(encoder.encode("abcdefghij"));
  assert.equal(await pending, "abcd");
  assert.equal(await readText(b, 4), "efgh");
  assert.equal(await readText(b, 4), "ij");
  a.close();
});

Deno.test("memoryPair() copies what is written, so the writer may reuse its buffer", async () => {
  const [a, b] = memoryPair();
  const bytes = encoder.encode("one");
  await a.write(bytes);
  bytes.set(encoder.encode("two"));
  assert.equal(await readText(b), "one");
  a.close();
});

Deno.test("memoryPair() close: what was written is still read, then the end; writes fail", async () => {
  const [a, b] = memoryPair();
  await a.write(encoder.encode("last words"));
  const waiting = readText(a);
  b.close();
  assert.equal(await waiting, null);
  assert.equal(await readText(b), "last words");
  assert.equal(await readText(b), null);
  await assert.rejects(a.write(encoder.encode("x")), Deno.errors.BrokenPipe);
  await assert.rejects(b.write(encoder.encode("x")), Deno.errors.BrokenPipe);
});

Deno.test("memoryPair() streams, made on first use, interoperate with read and write", async () => {
  const [a, b] = memoryPair();
  const writer = a.writable.getWriter();
  await writer.write(encoder.encode("via stream"));
  assert.equal(await readText(b), "via stream");
  await b.write(encoder.encode("via write"));
  const reader = a.readable.getReader();
  assert.equal(decoder.decode((await reader.read()).value), "via write");
  // The same stream each time.
  assert.equal(a.readable, a.readable);
  b.close();
  assert.equal((await reader.read()).done, true);
  reader.releaseLock();
  writer.releaseLock();
});

Deno.test("writeAll() writes everything through a connection that writes a little at a time", async () => {
  const written: number[] = [];
  const conn = {
    write(bytes: Uint8Array): Promise<number> {
      const size = Math.min(3, bytes.length);
      written.push(...bytes.subarray(0, size));
      return Promise.resolve(size);
    },
  };
  await writeAll(conn, Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8]));
  assert.deepEqual(written, [1, 2, 3, 4, 5, 6, 7, 8]);
  await assert.rejects(
    writeAll({ write: () => Promise.resolve(0) }, Uint8Array.of(1)),
    Deno.errors.WriteZero,
  );
});

Deno.test("streamConnection() reads a stream's chunks into small buffers and writes whole", async () => {
  const chunks: string[] = [];
  const conn = streamConnection({
    remoteAddr: { hostname: "127.0.0.1", port: 1 },
    readable: ReadableStream.from([encoder.encode("abcdef"), encoder.encode("g")]),
    writable: new WritableStream({ write: (chunk) => void chunks.push(decoder.decode(chunk)) }),
    close() {},
  });
  assert.equal(await readText(conn, 4), "abcd");
  assert.equal(await readText(conn, 4), "ef");
  assert.equal(await readText(conn, 4), "g");
  assert.equal(await readText(conn, 4), null);
  assert.equal(await conn.write(encoder.encode("out")), 3);
  assert.deepEqual(chunks, ["out"]);
});
