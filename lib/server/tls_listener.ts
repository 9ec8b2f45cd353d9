/**
 * The server's TLS listener, on node:tls: in Deno only its sockets can turn off Nagle's algorithm
 * (Deno.TlsConn has no setNoDelay), and without that a small write that follows another not yet
 * acknowledged waits for the client's delayed ACK: a direct message took 44 ms instead of 0.2.
 * Each accepted socket is adapted to a `Connection` (read/write, no web streams unless asked).
 */
import tls from "node:tls";
import type { Buffer } from "node:buffer";
import type { Address, Connection } from "../shared/transport.ts";
import { connectionStreams } from "../shared/transport.ts";

/** Bytes received and not yet read above which the socket is paused (backpressure). */
const HIGH_WATER = 64 * 1024;

/** A node:tls socket as a `Connection`: `read` takes what arrived, `write` resolves once sent. */
class TlsSocketConnection implements Connection {
  readonly remoteAddr: Address;
  readonly #socket: tls.TLSSocket;
  #chunks: Uint8Array[] = [];
  #buffered = 0;
  #ended = false;
  #wake: (() => void) | undefined;
  #streams:
    | { readable: ReadableStream<Uint8Array>; writable: WritableStream<Uint8Array> }
    | undefined;

  constructor(socket: tls.TLSSocket) {
    this.#socket = socket;
    this.remoteAddr = { hostname: socket.remoteAddress ?? "", port: socket.remotePort ?? 0 };
    socket.on("data", (chunk: Buffer) => {
      this.#chunks.push(chunk);
      this.#buffered += chunk.length;
      if (this.#buffered > HIGH_WATER) socket.pause();
      this.#notify();
    });
    const end = () => {
      this.#ended = true;
      this.#notify();
    };
    socket.on("end", end);
    socket.on("close", end);
    // Errors end the connection ("close" follows); the server's read loop sees the end.
    socket.on("error", () => {});
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  get readable(): ReadableStream<Uint8Array> {
    this.#streams ??= connectionStreams(this);
    return this.#streams.readable;
  }

  get writable(): WritableStream<Uint8Array> {
    this.#streams ??= connectionStreams(this);
    return this.#streams.writable;
  }

  async read(buffer: Uint8Array): Promise<number | null> {
    while (this.#chunks.length === 0) {
      if (this.#ended) return null;
      await new Promise<void>((resolve) => this.#wake = resolve);
    }
    const chunk = this.#chunks[0]!;
    const size = Math.min(buffer.length, chunk.length);
    buffer.set(chunk.subarray(0, size));
    if (size === chunk.length) this.#chunks.shift();
    else this.#chunks[0] = chunk.subarray(size);
    this.#buffered -= size;
    if (this.#buffered <= HIGH_WATER && this.#socket.isPaused()) this.#socket.resume();
    return size;
  }

  write(bytes: Uint8Array): Promise<number> {
    return new Promise((resolve, reject) => {
      if (this.#socket.destroyed || !this.#socket.writable) {
        reject(new Deno.errors.BrokenPipe("Connection closed"));
        return;
      }
      this.#socket.write(bytes, (error) => error ? reject(error) : resolve(bytes.length));
    });
  }

  close(): void {
    this.#socket.destroy();
  }
}

/** A node error from listen() as the Deno error a plain listener would throw. */
function denoError(error: unknown): unknown {
  const kinds: Record<string, new (message: string) => Error> = {
    EADDRINUSE: Deno.errors.AddrInUse,
    EADDRNOTAVAIL: Deno.errors.AddrNotAvailable,
    EACCES: Deno.errors.PermissionDenied,
  };
  const code = (error as { code?: string }).code;
  const Kind = code === undefined ? undefined : kinds[code];
  return Kind ? new Kind((error as Error).message) : error;
}

/** A bound TLS listener. */
export interface TlsListener {
  port: number;
  close(): void;
}

/**
 * Binds `hostname:port` for TLS with `cert`/`key` (PEM), calling `onConnection` for each client
 * whose handshake completed (within `handshakeTimeoutMs`) and `onHandshakeFailed` for the others.
 * Rejects (e.g. AddrInUse, a key that does not match the certificate) if it cannot listen.
 */
export function listenTls(options: {
  hostname: string;
  port: number;
  cert: string;
  key: string;
  handshakeTimeoutMs: number;
  onConnection: (conn: Connection) => void;
  onHandshakeFailed: (from: Address, error: unknown) => void;
  onError: (error: unknown) => void;
}): Promise<TlsListener> {
  return new Promise((resolve, reject) => {
    let server: tls.Server;
    try {
      // node:tls takes a key that does not belong to the certificate without a word; Deno's own
      // listener checks the pair at once (on a throwaway port).
      Deno.listenTls({ hostname: "127.0.0.1", port: 0, cert: options.cert, key: options.key })
        .close();
      server = tls.createServer(
        { cert: options.cert, key: options.key, handshakeTimeout: options.handshakeTimeoutMs },
        (socket) => {
          socket.setNoDelay(true);
          options.onConnection(new TlsSocketConnection(socket));
        },
      );
    } catch (error) {
      reject(error);
      return;
    }
    server.on("tlsClientError", (error, socket) => {
      // By now the TLS socket may have let go of its address; the TCP socket under it has not.
      const under = (socket as { _parent?: { remoteAddress?: string; remotePort?: number } })
        ._parent;
      options.onHandshakeFailed({
        hostname: socket.remoteAddress ?? under?.remoteAddress ?? "",
        port: socket.remotePort ?? under?.remotePort ?? 0,
      }, error);
      socket.destroy();
    });
    const failed = (error: unknown) => reject(denoError(error));
    server.once("error", failed);
    server.listen(options.port, options.hostname, () => {
      server.off("error", failed);
      // Accept errors (EMFILE and the like) are reported; they never end the server.
      server.on("error", options.onError);
      const address = server.address();
      resolve({
        port: typeof address === "object" && address ? address.port : options.port,
        close: () => server.close(),
      });
    });
  });
}
