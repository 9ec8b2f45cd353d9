/**
 * A byte-stream connection, as the server and client core see it. TCP implements it in
 * production; an in-memory pair implements it in tests. The core never knows which it has.
 */

/** Where a connection comes from. */
export interface Address {
  hostname: string;
  port: number;
}

/** One bidirectional byte stream. */
export interface Connection {
  readonly remoteAddr: Address;
  readonly readable: ReadableStream<Uint8Array>;
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

/** Adapts a Deno TCP connection. */
export function tcpConnection(conn: Deno.Conn): Connection {
  const remote = conn.remoteAddr as Deno.NetAddr;
  let closed = false;
  try {
    (conn as Deno.TcpConn).setNoDelay(true);
  } catch {
    // Not every platform supports it; latency is merely worse.
  }
  return {
    remoteAddr: { hostname: remote.hostname, port: remote.port },
    readable: conn.readable,
    writable: conn.writable,
    close() {
      if (closed) return;
      closed = true;
      try {
        conn.close();
      } catch {
        // Already closed by the peer or by a finished stream.
      }
    },
  };
}

function channel() {
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  let done = false;
  const readable = new ReadableStream<Uint8Array>({
    start(c) {
      controller = c;
    },
  });
  const writable = new WritableStream<Uint8Array>({
    write(chunk) {
      if (done) throw new Deno.errors.BrokenPipe("Connection closed");
      controller.enqueue(chunk.slice());
    },
  });
  const shut = () => {
    if (done) return;
    done = true;
    controller.close();
  };
  return { readable, writable, shut };
}

/**
 * Two connected in-memory endpoints: what one writes, the other reads. Closing either end
 * ends both directions, as a TCP reset would.
 */
export function memoryPair(
  a: Address = { hostname: "127.0.0.1", port: 40001 },
  b: Address = { hostname: "127.0.0.1", port: 40002 },
): [Connection, Connection] {
  const ab = channel();
  const ba = channel();
  const close = () => {
    ab.shut();
    ba.shut();
  };
  return [
    { remoteAddr: b, readable: ba.readable, writable: ab.writable, close },
    { remoteAddr: a, readable: ab.readable, writable: ba.writable, close },
  ];
}
