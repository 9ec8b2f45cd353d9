/**
 * Serves a ChatServer on a TCP port, in TLS unless told otherwise, until a signal aborts,
 * sweeping timeouts once a second. The port is bound before the server starts, so a server that
 * cannot bind never touches the files of one that already runs there. Nothing one connection
 * does (a failed handshake, a plain client on the TLS port) and no failure to accept (such as
 * running out of file descriptors) ends the server: only the signal does.
 */
import type { ChatServer } from "./chat_server.ts";
import { tcpConnection } from "../shared/transport.ts";
import { acceptProxied } from "./proxy_protocol.ts";
import type { Logger } from "../shared/logger.ts";

/** A running listener. */
export interface Listening {
  /** The port actually bound (useful with port 0). */
  port: number;
  /** Resolves when the listener has stopped and every session has ended. */
  finished: Promise<void>;
}

/** The certificate (chain) and key, PEM, that the server presents in TLS. */
export interface TlsOptions {
  cert: string;
  key: string;
}

/** Options of `serveTcp`. */
export interface ServeOptions {
  hostname: string;
  port: number;
  signal: AbortSignal;
  sweepMs?: number;
  /** Speak TLS with this certificate; without it the plain protocol. */
  tls?: TlsOptions;
  /** How long a client may take to finish the TLS handshake (default 10 s). */
  handshakeTimeoutMs?: number;
  /** How long to stop accepting after an accept failed (default 250 ms). */
  acceptBackoffMs?: number;
  /**
   * Every connection opens with a PROXY protocol header from a load balancer, naming the client's
   * address (proxy_protocol.ts; plain TCP only). It must arrive within the handshake timeout.
   */
  proxyProtocol?: boolean;
}

const HANDSHAKE_TIMEOUT_MS = 10_000;
const ACCEPT_BACKOFF_MS = 250;
const HANDSHAKE_LOG_INTERVAL_MS = 60_000;

/**
 * Binds the port, starts the server (which empties its logs), then accepts. Throws (e.g.
 * AddrInUse, or a certificate and key that do not belong together) if the port cannot be bound,
 * before the server is started.
 */
export async function serveTcp(server: ChatServer, options: ServeOptions): Promise<Listening> {
  const address = { hostname: options.hostname, port: options.port };
  const listener: Deno.Listener = options.tls
    ? Deno.listenTls({ ...address, cert: options.tls.cert, key: options.tls.key })
    : Deno.listen(address);
  try {
    await server.start();
  } catch (error) {
    listener.close();
    throw error;
  }
  const sweeper = setInterval(() => {
    server.sweep().catch((error) => server.config.logger.warn(`Sweep failed: ${String(error)}`));
  }, options.sweepMs ?? 1000);
  // A failed handshake is logged at most once a minute, with how many went unlogged meanwhile:
  // a scanner must not flood the log, and a problem late in a long run must still show.
  let lastLogged = -Infinity;
  let unlogged = 0;
  const openingFailed = (conn: Deno.Conn, what: (from: string) => string) => {
    const now = server.clock.now();
    if (now - lastLogged < HANDSHAKE_LOG_INTERVAL_MS) {
      unlogged++;
      return;
    }
    const from = conn.remoteAddr as Deno.NetAddr;
    const more = unlogged > 0 ? ` (${unlogged} more since the last one logged)` : "";
    server.config.logger.warn(`${what(`${from.hostname}:${from.port}`)}${more}`);
    lastLogged = now;
    unlogged = 0;
  };
  const handshakeFailed = (conn: Deno.Conn, error: unknown) =>
    openingFailed(
      conn,
      (from) =>
        `TLS handshake with ${from} failed (${errorText(error)}); ` +
        `a client started with --no-tls cannot talk to a TLS server`,
    );
  const proxyFailed = (conn: Deno.Conn, error: unknown) =>
    openingFailed(
      conn,
      (from) =>
        `Closed a connection from ${from}: ${errorText(error)} (--proxy-protocol: only the ` +
        `load balancer may connect)`,
    );
  const handshakeMs = options.handshakeTimeoutMs ?? HANDSHAKE_TIMEOUT_MS;
  const finished = (async () => {
    try {
      await acceptLoop(listener, {
        signal: options.signal,
        logger: server.config.logger,
        onConnection: options.tls
          ? (conn) =>
            void handshake(conn as Deno.TlsConn, handshakeMs).then(
              () => server.handle(tcpConnection(conn)),
              (error) => handshakeFailed(conn, error),
            )
          : options.proxyProtocol
          ? (conn) =>
            void acceptProxied(tcpConnection(conn), handshakeMs).then(
              (proxied) => server.handle(proxied),
              (error) => proxyFailed(conn, error),
            )
          : (conn) => void server.handle(tcpConnection(conn)),
        ...(options.acceptBackoffMs !== undefined ? { backoffMs: options.acceptBackoffMs } : {}),
      });
    } finally {
      clearInterval(sweeper);
      await server.close();
    }
  })();
  return { port: (listener.addr as Deno.NetAddr).port, finished };
}

/** What `acceptLoop` needs of a listener (a seam for tests). */
export interface Acceptor {
  accept(): Promise<Deno.Conn>;
  close(): void;
}

/** Accept errors that concern one connection, gone before it was accepted, not the listener. */
const GONE_BEFORE_ACCEPT = [
  Deno.errors.NotConnected,
  Deno.errors.ConnectionReset,
  Deno.errors.ConnectionAborted,
];

/**
 * Accepts connections until `signal` aborts (which closes the listener), handing each to
 * `onConnection`. An accept that fails for want of resources (EMFILE "Too many open files",
 * ENFILE) pauses accepting for `backoffMs` and goes on; it is logged once per run of failures, not
 * once per failure, and the end of the run is logged too. One that failed because its connection
 * was gone before it was accepted (reset, aborted, not connected: a balancer's health check) is
 * passed over at once, unlogged.
 */
export async function acceptLoop(
  listener: Acceptor,
  options: {
    signal: AbortSignal;
    logger: Logger;
    onConnection: (conn: Deno.Conn) => void;
    backoffMs?: number;
  },
): Promise<void> {
  const { signal, logger } = options;
  const backoffMs = options.backoffMs ?? ACCEPT_BACKOFF_MS;
  let wake: (() => void) | undefined;
  const stop = () => {
    try {
      listener.close();
    } catch {
      // Already closed.
    }
    wake?.();
  };
  if (signal.aborted) return stop();
  signal.addEventListener("abort", stop, { once: true });
  let failures = 0;
  try {
    while (!signal.aborted) {
      let conn: Deno.Conn;
      try {
        conn = await listener.accept();
      } catch (error) {
        if (signal.aborted) break;
        // That one connection was gone before it was accepted (a balancer's health check
        // connects and resets): nothing is wrong with accepting, so nothing pauses or is logged.
        if (GONE_BEFORE_ACCEPT.some((kind) => error instanceof kind)) continue;
        if (failures++ === 0) {
          logger.warn(
            `Cannot accept connections (${errorText(error)}); pausing and retrying until it works`,
          );
        }
        await new Promise<void>((resolve) => {
          const timer = setTimeout(() => {
            wake = undefined;
            resolve();
          }, backoffMs);
          wake = () => {
            clearTimeout(timer);
            wake = undefined;
            resolve();
          };
        });
        continue;
      }
      if (failures > 0) {
        logger.warn(`Accepting connections again (after ${failures} failed attempts)`);
        failures = 0;
      }
      if (signal.aborted) {
        conn.close();
        break;
      }
      options.onConnection(conn);
    }
  } finally {
    signal.removeEventListener("abort", stop);
  }
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * Finishes the TLS handshake (Deno would otherwise do it on the first read) within `timeoutMs`,
 * or closes the connection and throws. A client that fails it (a plain client on the TLS port, a
 * scanner, a client that refuses the certificate) only loses its own connection.
 */
async function handshake(conn: Deno.TlsConn, timeoutMs: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    await Promise.race([
      conn.handshake(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error("the TLS handshake timed out")), timeoutMs);
      }),
    ]);
  } catch (error) {
    try {
      conn.close();
    } catch {
      // Already closed.
    }
    throw error;
  } finally {
    clearTimeout(timer);
  }
}
