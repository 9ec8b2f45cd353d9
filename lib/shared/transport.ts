/**
 * A byte-stream connection, as the server and client core see it. TCP implements it in
 * production; an in-memory pair implements it in tests. The core never knows which it has.
 */

/** Where a connection comes from. */
export interface Address {
  hostname: string;
  port: number;
}

/**
 * One bidirectional byte stream, readable and writable two ways: `read`/`write` (what the server
 * uses: nothing per connection but the caller's buffer) or the `readable`/`writable` streams (what
 * the client uses), made on first use. Use one way per direction, not both.
 */
export interface Connection {
  readonly remoteAddr: Address;
  /** Reads into `buffer`; resolves with how many bytes it read, or null at the end of the stream. */
  read(buffer: Uint8Array): Promise<number | null>;
  /** Writes some of `bytes`, at least one; resolves with how many it wrote. */
  write(bytes: Uint8Array): Promise<number>;
  /** The bytes read as a stream. */
  readonly readable: ReadableStream<Uint8Array>;
  /** Writes whole chunks, each once the previous one is written. */
  readonly writable: WritableStream<Uint8Array>;
  /** Closes both directions now; safe to call more than once. */
  close(): void;
}

/**
 * A connection refused or ended for a reason its user must read and that trying again will not
 * cure: the server's certificate changed, or the other side speaks TLS and this one does not.
 */
export class TransportError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "TransportError";
  }
}

/** Writes all of `bytes`, however many calls of `write` that takes. */
export async function writeAll(conn: Pick<Connection, "write">, bytes: Uint8Array): Promise<void> {
  let done = 0;
  while (done < bytes.length) {
    const written = await conn.write(done === 0 ? bytes : bytes.subarray(done));
    if (written <= 0) throw new Deno.errors.WriteZero("Write wrote no bytes");
    done += written;
  }
}

/**
 * A Deno TCP (or TLS) connection. Its streams are only made if asked for: Deno makes them
 * lazily, and on a server with thousands of idle connections they would cost more than the
 * rest of a session together.
 */
class TcpConnection implements Connection {
  readonly remoteAddr: Address;
  readonly #conn: Deno.Conn;
  #closed = false;

  constructor(conn: Deno.Conn) {
    this.#conn = conn;
    const remote = conn.remoteAddr as Deno.NetAddr;
    this.remoteAddr = { hostname: remote.hostname, port: remote.port };
  }

  read(buffer: Uint8Array): Promise<number | null> {
    return this.#conn.read(buffer);
  }

  write(bytes: Uint8Array): Promise<number> {
    return this.#conn.write(bytes);
  }

  get readable(): ReadableStream<Uint8Array> {
    return this.#conn.readable;
  }

  get writable(): WritableStream<Uint8Array> {
    return this.#conn.writable;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#conn.close();
    } catch {
      // Already closed by the peer or by a finished stream.
    }
  }
}

/** Adapts a Deno TCP (or TLS) connection. */
export function tcpConnection(conn: Deno.Conn): Connection {
  // A TLS connection has no setNoDelay.
  const tcp = conn as Partial<Deno.TcpConn>;
  try {
    tcp.setNoDelay?.(true);
  } catch {
    // Not every platform supports it; latency is merely worse.
  }
  return new TcpConnection(conn);
}

/**
 * A connection made of a pair of streams (a node:tls socket's, a filtered TCP stream), whose
 * `read` and `write` take from and give to those streams.
 */
export function streamConnection(parts: {
  remoteAddr: Address;
  readable: ReadableStream<Uint8Array>;
  writable: WritableStream<Uint8Array>;
  close(): void;
}): Connection {
  let reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
  let writer: WritableStreamDefaultWriter<Uint8Array> | undefined;
  let left: Uint8Array | undefined;
  return {
    remoteAddr: parts.remoteAddr,
    readable: parts.readable,
    writable: parts.writable,
    close: () => parts.close(),
    async read(buffer) {
      while (!left || left.length === 0) {
        reader ??= parts.readable.getReader();
        const { value, done } = await reader.read();
        if (done) return null;
        left = value;
      }
      const size = Math.min(buffer.length, left.length);
      buffer.set(left.subarray(0, size));
      left = left.subarray(size);
      return size;
    },
    async write(bytes) {
      writer ??= parts.writable.getWriter();
      await writer.write(bytes);
      return bytes.length;
    },
  };
}

/** A readable stream of what `conn.read` returns. */
function readableOf(conn: Connection): ReadableStream<Uint8Array> {
  const buffer = new Uint8Array(64 * 1024);
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      const size = await conn.read(buffer);
      if (size === null) controller.close();
      else controller.enqueue(buffer.slice(0, size));
    },
  });
}

/** A writable stream onto `conn.write`. */
function writableOf(conn: Connection): WritableStream<Uint8Array> {
  return new WritableStream<Uint8Array>({ write: (chunk) => writeAll(conn, chunk) });
}

/** One direction of an in-memory pair: chunks written and not yet read. */
class MemoryPipe {
  #chunks: Uint8Array[] = [];
  #done = false;
  #waiting: Array<() => void> = [];

  write(bytes: Uint8Array): number {
    if (this.#done) throw new Deno.errors.BrokenPipe("Connection closed");
    // Copy: the writer may reuse its buffer once the write resolved.
    if (bytes.length > 0) this.#chunks.push(bytes.slice());
    this.#wake();
    return bytes.length;
  }

  async read(buffer: Uint8Array): Promise<number | null> {
    while (this.#chunks.length === 0) {
      if (this.#done) return null;
      await new Promise<void>((resolve) => this.#waiting.push(resolve));
    }
    // One written chunk at most per read, as a socket of small writes tends to deliver them.
    const chunk = this.#chunks[0]!;
    const size = Math.min(buffer.length, chunk.length);
    buffer.set(chunk.subarray(0, size));
    if (size === chunk.length) this.#chunks.shift();
    else this.#chunks[0] = chunk.subarray(size);
    return size;
  }

  /** Ends the pipe: what was written can still be read, then the end. */
  shut(): void {
    this.#done = true;
    this.#wake();
  }

  #wake(): void {
    for (const resolve of this.#waiting.splice(0)) resolve();
  }
}

/** One end of an in-memory pair. */
class MemoryConnection implements Connection {
  readonly remoteAddr: Address;
  readonly #in: MemoryPipe;
  readonly #out: MemoryPipe;
  readonly #shut: () => void;
  #readable: ReadableStream<Uint8Array> | undefined;
  #writable: WritableStream<Uint8Array> | undefined;

  constructor(remoteAddr: Address, pipes: { in: MemoryPipe; out: MemoryPipe }, shut: () => void) {
    this.remoteAddr = remoteAddr;
    this.#in = pipes.in;
    this.#out = pipes.out;
    this.#shut = shut;
  }

  read(buffer: Uint8Array): Promise<number | null> {
    return this.#in.read(buffer);
  }

  write(bytes: Uint8Array): Promise<number> {
    try {
      return Promise.resolve(this.#out.write(bytes));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  get readable(): ReadableStream<Uint8Array> {
    return this.#readable ??= readableOf(this);
  }

  get writable(): WritableStream<Uint8Array> {
    return this.#writable ??= writableOf(this);
  }

  close(): void {
    this.#shut();
  }
}

/**
 * Two connected in-memory endpoints: what one writes, the other reads. Closing either end
 * ends both directions, as a TCP reset would.
 */
export function memoryPair(
  a: Address = { hostname: "127.0.0.1", port: 40001 },
  b: Address = { hostname: "127.0.0.1", port: 40002 },
): [Connection, Connection] {
  const ab = new MemoryPipe();
  const ba = new MemoryPipe();
  const close = () => {
    ab.shut();
    ba.shut();
  };
  return [
    new MemoryConnection(b, { in: ba, out: ab }, close),
    new MemoryConnection(a, { in: ab, out: ba }, close),
  ];
}

/** Whether `error` only says the peer went away (or the connection was closed here). */
export function isHangUp(error: unknown): boolean {
  return error instanceof Deno.errors.ConnectionReset ||
    error instanceof Deno.errors.BadResource ||
    error instanceof Deno.errors.Interrupted ||
    error instanceof Deno.errors.BrokenPipe;
}
