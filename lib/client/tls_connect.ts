/**
 * How the client reaches the server: TLS by default, checked before a single byte of the
 * protocol is sent. A certificate that verifies for the host (against the public authorities, or
 * only against `--ca`) is accepted as the web does; any other is pinned on first use and must stay
 * the same afterwards (see known_servers.ts). `--no-tls` speaks plain TCP. Either way the result is
 * a `Connection`, and either way a server that speaks the other transport is named as such.
 */
import { Buffer } from "node:buffer";
import tls from "node:tls";
import { certificateFingerprint } from "../shared/fingerprint.ts";
import {
  type Connection,
  streamConnection,
  tcpConnection,
  TransportError,
} from "../shared/transport.ts";
import { type KnownServers, serverKey } from "./known_servers.ts";

/** Where to connect and how to judge the server's certificate. */
export interface DialOptions {
  hostname: string;
  port: number;
  /**
   * PEM certificates of the only authorities to trust (`--ca`): the server's certificate must
   * verify against them for the host, or the connection is refused; nothing is pinned.
   */
  ca?: string;
  /** How `ca` is named in messages (the file's path). */
  caName?: string;
  /** Where pins are looked up and kept. */
  knownServers: KnownServers;
  /** Tells the user something worth knowing once (a new pin); chat-client writes it to stderr. */
  notify?: (message: string) => void;
  /** How long connecting and the handshake may take (default 15 s). */
  timeoutMs?: number;
  /** Refuse a certificate that does not verify, even a pinned one (see `serverDialer`). */
  requireVerified?: boolean;
}

/** A TLS connection and what was learnt of the server's certificate. */
export interface TlsConnection extends Connection {
  /** The SHA-256 fingerprint of the server's certificate. */
  readonly fingerprint: string;
  /** Whether the certificate verified for the host (by an authority), rather than by a pin. */
  readonly verified: boolean;
}

/** The server presented a certificate other than the one pinned for it: nothing was sent. */
export class CertificateChangedError extends TransportError {
  readonly server: string;
  readonly pinned: string;
  readonly presented: string;

  constructor(
    options: { server: string; pinned: string; presented: string; where: string; line: number },
  ) {
    const { server, pinned, presented, where, line } = options;
    const bar = "@".repeat(72);
    const how = line > 0
      ? `remove line ${line} of ${where} (the line that starts with "${server} ") and connect ` +
        "again; the new certificate is then pinned."
      : "start the client again; the certificate was pinned only for this session.";
    super(
      [
        bar,
        "@    WARNING: THE SERVER'S CERTIFICATE HAS CHANGED. NOTHING WAS SENT TO IT.",
        bar,
        `The server at ${server} presented a different TLS certificate from the one pinned for it.`,
        "Someone may be intercepting the connection (a man-in-the-middle attack), or the server's",
        "certificate was replaced (for instance, its toom-cert.pem and toom-key.pem were deleted).",
        `Pinned:    ${pinned}`,
        `Presented: ${presented}`,
        "The server prints its fingerprint when it starts. Only if its operator confirms that the",
        `new one (Presented) is right, accept it: ${how}`,
      ].join("\n"),
    );
    this.name = "CertificateChangedError";
    this.server = server;
    this.pinned = pinned;
    this.presented = presented;
  }
}

/** The server's certificate does not verify against `--ca` (or no longer verifies). */
export class UntrustedCertificateError extends TransportError {
  constructor(message: string) {
    super(message);
    this.name = "UntrustedCertificateError";
  }
}

/** What a TLS client that met a plain server is told. */
export function notTlsMessage(server: string): string {
  return `The server at ${server} does not speak TLS; if it was started with --no-tls, start ` +
    "the client with --no-tls too (passwords and peer-to-peer keys then cross the network in " +
    "the clear).";
}

/** What a --no-tls client that met a TLS server is told. */
export const SPEAKS_TLS =
  "The server speaks TLS, but this client was started with --no-tls; start it without --no-tls.";

/** The notice printed when a server's certificate is pinned for the first time. */
export function pinnedNotice(
  options: { server: string; fingerprint: string; where: string; persistent: boolean },
): string {
  const kept = options.persistent
    ? `It is saved in ${options.where}; from now on the client refuses this server if it ` +
      "presents another certificate."
    : "It could not be saved, so it is checked only until the client exits.";
  return [
    `First connection to ${options.server}: its TLS certificate is not signed by an authority ` +
    "this client trusts, so it is pinned on first use.",
    `  SHA-256 fingerprint: ${options.fingerprint}`,
    `${kept} To be sure no one is in between now, compare it with the fingerprint the server ` +
    "printed when it started.",
  ].join("\n");
}

function isIpAddress(host: string): boolean {
  return /^\d{1,3}(\.\d{1,3}){3}$/.test(host) || host.includes(":");
}

function isPlainServer(error: Error & { code?: string }): boolean {
  return error.code === "ERR_SSL_WRONG_VERSION_NUMBER" ||
    /wrong version number|InvalidContentType|packet length too long|unknown protocol/i.test(
      error.message,
    );
}

/** Opens the TLS socket and waits for the handshake; resolves with the socket. */
function handshake(options: DialOptions, server: string): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({
      host: options.hostname,
      port: options.port,
      // Checked below, by hand: an unverified certificate may still be the pinned one.
      rejectUnauthorized: false,
      ...(isIpAddress(options.hostname) ? {} : { servername: options.hostname }),
      ...(options.ca !== undefined ? { ca: options.ca } : {}),
    });
    const timer = setTimeout(() => {
      fail(new Error(`Connecting to ${server} timed out`));
    }, options.timeoutMs ?? 15_000);
    const settle = () => {
      clearTimeout(timer);
      socket.off("secureConnect", onSecure);
      socket.off("error", fail);
      socket.off("close", onClose);
    };
    function fail(error: Error & { code?: string }) {
      settle();
      socket.destroy();
      reject(isPlainServer(error) ? new TransportError(notTlsMessage(server)) : error);
    }
    function onSecure() {
      settle();
      resolve(socket);
    }
    function onClose() {
      fail(new Error(`The server at ${server} closed the connection during the TLS handshake`));
    }
    socket.once("secureConnect", onSecure);
    socket.once("error", fail);
    socket.once("close", onClose);
  });
}

/**
 * Connects with TLS and judges the server's certificate (see the module comment) before handing
 * the connection over. Throws `CertificateChangedError` or `UntrustedCertificateError` (nothing
 * sent), a `TransportError` when the server does not speak TLS, or the network's error.
 */
export async function connectTls(options: DialOptions): Promise<TlsConnection> {
  const server = serverKey(options.hostname, options.port);
  const socket = await handshake(options, server);
  // Errors from here on are the connection's; without a listener one would crash the client.
  socket.on("error", () => {});
  try {
    const peer = socket.getPeerCertificate(true);
    if (!peer?.raw) throw new Error(`The server at ${server} presented no certificate`);
    const fingerprint = await certificateFingerprint(new Uint8Array(peer.raw));
    const identityProblem = socket.authorized
      ? tls.checkServerIdentity(options.hostname, peer)
      : new Error(String(socket.authorizationError ?? "not verified"));
    const verified = identityProblem === undefined;
    if (options.ca !== undefined || options.requireVerified) {
      if (!verified) {
        const against = options.ca !== undefined
          ? `verify against ${options.caName ?? "--ca"}`
          : "verify any more, although it did when the client first connected";
        throw new UntrustedCertificateError(
          `The server at ${server} presented a certificate that does not ${against}: ` +
            `${identityProblem.message} (fingerprint ${fingerprint}). Nothing was sent to it.`,
        );
      }
    } else if (!verified) {
      await checkPin(options, server, fingerprint);
    }
    return Object.assign(socketConnection(socket), { fingerprint, verified });
  } catch (error) {
    socket.destroy();
    throw error;
  }
}

/** Accepts `fingerprint` for `server` if it is the pinned one, or pins it if none is. */
async function checkPin(options: DialOptions, server: string, fingerprint: string): Promise<void> {
  const store = options.knownServers;
  const pin = await store.lookup(server);
  if (pin?.fingerprint === fingerprint) return;
  if (pin) {
    throw new CertificateChangedError({
      server,
      pinned: pin.fingerprint,
      presented: fingerprint,
      where: store.where,
      line: pin.line,
    });
  }
  await store.remember(server, fingerprint);
  options.notify?.(
    pinnedNotice({ server, fingerprint, where: store.where, persistent: store.persistent }),
  );
}

/** Adapts a node:tls socket to a `Connection`, with backpressure both ways. */
export function socketConnection(socket: tls.TLSSocket): Connection {
  let ended = false;
  const readable = new ReadableStream<Uint8Array>({
    start(controller) {
      socket.on("data", (chunk: Buffer) => {
        if (ended) return;
        controller.enqueue(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
        if ((controller.desiredSize ?? 0) <= 0) socket.pause();
      });
      const finish = () => {
        if (ended) return;
        ended = true;
        controller.close();
      };
      socket.on("end", finish);
      socket.on("close", finish);
      socket.on("error", (error) => {
        if (ended) return;
        ended = true;
        controller.error(error);
      });
    },
    pull() {
      socket.resume();
    },
    cancel() {
      ended = true;
      socket.destroy();
    },
  }, { highWaterMark: 4 });
  const writable = new WritableStream<Uint8Array>({
    write(chunk) {
      return new Promise((resolve, reject) => {
        if (socket.destroyed || !socket.writable) {
          return reject(new Deno.errors.BrokenPipe("Connection closed"));
        }
        socket.write(chunk, (error) => error ? reject(error) : resolve());
      });
    },
    close() {
      socket.end();
    },
    abort() {
      socket.destroy();
    },
  });
  return streamConnection({
    remoteAddr: { hostname: socket.remoteAddress ?? "", port: socket.remotePort ?? 0 },
    readable,
    writable,
    close() {
      socket.destroy();
    },
  });
}

/**
 * Connects with plain TCP (`--no-tls`). A server that answers with a TLS record (it speaks TLS)
 * ends the connection with a `TransportError` saying so, instead of a frame error.
 */
export async function connectPlain(hostname: string, port: number): Promise<Connection> {
  const conn = tcpConnection(await Deno.connect({ hostname, port }));
  let first = true;
  const readable = conn.readable.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        // A TLS record starts with its type (21 alert, 22 handshake) and major version 3; a
        // frame starts with "{".
        if (first && chunk.length >= 2 && (chunk[0] === 21 || chunk[0] === 22) && chunk[1] === 3) {
          throw new TransportError(SPEAKS_TLS);
        }
        first = false;
        controller.enqueue(chunk);
      },
    }),
  );
  return streamConnection({
    remoteAddr: conn.remoteAddr,
    readable,
    writable: conn.writable,
    close: () => conn.close(),
  });
}

/** How chat-client reaches its server, for the first connection and every reconnection. */
export interface DialerOptions extends DialOptions {
  /** Plain TCP (`--no-tls`). */
  plain?: boolean;
}

/**
 * A function that connects to the server each time it is called, the first connection and every
 * reconnection alike, each checked the same way. A server whose certificate verified at the first
 * connection must verify on every later one (a pin is not enough then).
 */
export function serverDialer(options: DialerOptions): () => Promise<Connection> {
  let verifiedBefore = false;
  return async () => {
    if (options.plain) return await connectPlain(options.hostname, options.port);
    const conn = await connectTls({ ...options, requireVerified: verifiedBefore });
    verifiedBefore ||= conn.verified;
    return conn;
  };
}
