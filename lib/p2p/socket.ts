/**
 * The datagram seam: the engine talks to a {@linkcode DatagramSocket}, never to Deno's UDP API
 * directly, so tests can put a lossy or in-memory network underneath it.
 *
 * @module
 */

import type { PeerAddress } from "./ticket.ts";

/** One received datagram and where it came from. */
export interface Datagram {
  data: Uint8Array;
  from: PeerAddress;
}

/** A bound, unconnected datagram socket. */
export interface DatagramSocket {
  /** The address the socket is bound to (the real port when bound to port 0). */
  readonly localAddress: PeerAddress;
  /** Sends one datagram; resolves once handed to the network. May reject (unreachable). */
  send(data: Uint8Array, to: PeerAddress): Promise<void>;
  /** Waits for the next datagram; resolves `null` once the socket is closed. */
  receive(): Promise<Datagram | null>;
  /**
   * Optional fast path of `receive()`: receives into `buffer` (65,536 bytes or more) and returns a
   * datagram whose `data` is a view of it, valid only until the next call. Saves allocating (and
   * garbage collecting) a buffer per datagram.
   */
  receiveInto?(buffer: Uint8Array): Promise<Datagram | null>;
  /** Closes the socket; a pending `receive()` resolves `null`. Idempotent. */
  close(): void;
}

/** Where to bind a {@linkcode UdpSocket}. */
export interface UdpListenOptions {
  /** Interface to bind, e.g. `"127.0.0.1"` or `"0.0.0.0"`; always explicit. */
  hostname: string;
  /** Port to bind; 0 picks any free port (read it back from `localAddress`). */
  port: number;
}

/** A {@linkcode DatagramSocket} over `Deno.listenDatagram` (UDP). */
export class UdpSocket implements DatagramSocket {
  readonly localAddress: PeerAddress;
  #conn: Deno.DatagramConn;
  #closed = false;

  /** Binds a UDP socket; throws the OS error if the port is taken. */
  constructor(options: UdpListenOptions) {
    this.#conn = Deno.listenDatagram({
      transport: "udp",
      hostname: options.hostname,
      port: options.port,
    });
    const addr = this.#conn.addr as Deno.NetAddr;
    this.localAddress = { hostname: addr.hostname, port: addr.port };
  }

  async send(data: Uint8Array, to: PeerAddress): Promise<void> {
    if (this.#closed) throw new Deno.errors.BadResource("Cannot send on a closed UDP socket");
    await this.#conn.send(data, { transport: "udp", hostname: to.hostname, port: to.port });
  }

  receive(): Promise<Datagram | null> {
    return this.#receive(undefined);
  }

  receiveInto(buffer: Uint8Array): Promise<Datagram | null> {
    return this.#receive(buffer);
  }

  async #receive(buffer: Uint8Array | undefined): Promise<Datagram | null> {
    while (!this.#closed) {
      try {
        const [data, addr] = await this.#conn.receive(buffer);
        const net = addr as Deno.NetAddr;
        return { data, from: { hostname: net.hostname, port: net.port } };
      } catch (error) {
        if (this.#closed) return null;
        // An ICMP error for an earlier send can surface on receive; it says nothing about the
        // next datagram, so keep listening.
        if (error instanceof Deno.errors.ConnectionRefused) continue;
        if (error instanceof Deno.errors.ConnectionReset) continue;
        throw error;
      }
    }
    return null;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#conn.close();
    } catch {
      // Already closed by the runtime: nothing left to release.
    }
  }
}

/** True for loopback hostnames, where the engine may use large datagrams. */
export function isLoopback(hostname: string): boolean {
  return hostname === "localhost" || hostname === "::1" || /^127\.\d+\.\d+\.\d+$/.test(hostname);
}
