/**
 * Test doubles for the datagram seam: a {@linkcode LossySocket} that wraps any socket and injects
 * seeded loss, duplication, reordering, delay and corruption on the datagrams it sends, and an
 * in-memory {@linkcode MemoryNetwork} of sockets that needs no real ports.
 *
 * @module
 */

import type { Clock, TimerHandle } from "./clock.ts";
import { SYSTEM_CLOCK } from "./clock.ts";
import type { Datagram, DatagramSocket } from "./socket.ts";
import type { PeerAddress } from "./ticket.ts";

/** A small seeded PRNG (mulberry32): same seed, same decisions. Returns [0, 1). */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** What a {@linkcode LossySocket} does to outgoing datagrams; probabilities are 0..1. */
export interface LossOptions {
  /** PRNG seed; the same seed and traffic give the same faults. */
  seed: number;
  /** Probability a datagram is silently dropped. */
  loss?: number;
  /** Probability a datagram is sent twice. */
  duplicate?: number;
  /** Probability a datagram is held back and sent after the next one. */
  reorder?: number;
  /** Probability one byte of a datagram is flipped. */
  corrupt?: number;
  /** Extra delay per datagram, uniformly in [min, max] ms (0 = none). */
  delayMs?: [number, number];
  /** Clock for delays (defaults to the system clock). */
  clock?: Clock;
}

/** Counts of what a {@linkcode LossySocket} did. */
export interface LossStats {
  sent: number;
  dropped: number;
  duplicated: number;
  reordered: number;
  corrupted: number;
}

/** Wraps a socket and damages what it sends, reproducibly. It owns (and closes) `inner`. */
export class LossySocket implements DatagramSocket {
  readonly localAddress: PeerAddress;
  /** What was done so far. */
  readonly stats: LossStats = { sent: 0, dropped: 0, duplicated: 0, reordered: 0, corrupted: 0 };
  #inner: DatagramSocket;
  #random: () => number;
  #options: LossOptions;
  #clock: Clock;
  #held: { data: Uint8Array; to: PeerAddress } | undefined;
  #timers = new Set<TimerHandle>();
  #closed = false;

  /** Wraps `inner` with the faults in `options`. */
  constructor(inner: DatagramSocket, options: LossOptions) {
    this.#inner = inner;
    this.#options = options;
    this.#random = seededRandom(options.seed);
    this.#clock = options.clock ?? SYSTEM_CLOCK;
    this.localAddress = inner.localAddress;
  }

  async send(data: Uint8Array, to: PeerAddress): Promise<void> {
    if (this.#closed) return;
    this.stats.sent++;
    const o = this.#options;
    if (this.#random() < (o.loss ?? 0)) {
      this.stats.dropped++;
      return;
    }
    let bytes = data;
    if (this.#random() < (o.corrupt ?? 0)) {
      bytes = data.slice();
      const at = Math.floor(this.#random() * bytes.length);
      bytes[at] = (bytes[at] ?? 0) ^ (1 + Math.floor(this.#random() * 255));
      this.stats.corrupted++;
    }
    const copies = this.#random() < (o.duplicate ?? 0) ? 2 : 1;
    if (copies === 2) this.stats.duplicated++;
    if (this.#held === undefined && this.#random() < (o.reorder ?? 0)) {
      // Hold this one back; it goes out right after the next datagram.
      this.stats.reordered++;
      // Copied: the caller may reuse its buffer once send() resolved.
      this.#held = { data: bytes === data ? data.slice() : bytes, to };
      if (copies === 2) await this.#deliver(bytes, to);
      return;
    }
    for (let i = 0; i < copies; i++) await this.#deliver(bytes, to);
    const held = this.#held;
    if (held !== undefined) {
      this.#held = undefined;
      await this.#deliver(held.data, held.to);
    }
  }

  async #deliver(data: Uint8Array, to: PeerAddress): Promise<void> {
    const delay = this.#options.delayMs;
    if (delay === undefined || delay[1] <= 0) {
      await this.#inner.send(data, to).catch(() => {});
      return;
    }
    const ms = delay[0] + this.#random() * (delay[1] - delay[0]);
    const copy = data.slice();
    const timer = this.#clock.setTimeout(() => {
      this.#timers.delete(timer);
      if (!this.#closed) this.#inner.send(copy, to).catch(() => {});
    }, ms);
    this.#timers.add(timer);
  }

  receive(): Promise<Datagram | null> {
    return this.#inner.receive();
  }

  receiveInto(buffer: Uint8Array): Promise<Datagram | null> {
    const inner = this.#inner;
    return inner.receiveInto === undefined ? inner.receive() : inner.receiveInto(buffer);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const timer of this.#timers) this.#clock.clearTimeout(timer);
    this.#timers.clear();
    this.#inner.close();
  }
}

/** Options of a {@linkcode MemoryNetwork}. */
export interface MemoryNetworkOptions {
  /** Datagrams a socket buffers before it drops new ones, like a kernel receive buffer. */
  queueLimit?: number;
}

/** An in-memory network: sockets on 127.0.0.1 with made-up ports, delivering by copy. */
export class MemoryNetwork {
  #sockets = new Map<number, MemorySocket>();
  #nextPort = 40000;
  #queueLimit: number;

  /** Creates an empty network. */
  constructor(options: MemoryNetworkOptions = {}) {
    this.#queueLimit = options.queueLimit ?? 4096;
  }

  /** Binds a new socket on 127.0.0.1 with a fresh port. */
  socket(): MemorySocket {
    const port = this.#nextPort++;
    const socket = new MemorySocket({ hostname: "127.0.0.1", port }, this, this.#queueLimit);
    this.#sockets.set(port, socket);
    return socket;
  }

  /** @internal Routes one datagram; unknown ports drop it like UDP does. */
  route(data: Uint8Array, from: PeerAddress, to: PeerAddress): void {
    this.#sockets.get(to.port)?.enqueue({ data: data.slice(), from });
  }

  /** @internal Forgets a closed socket. */
  unbind(port: number): void {
    this.#sockets.delete(port);
  }
}

/** A socket of a {@linkcode MemoryNetwork}. */
export class MemorySocket implements DatagramSocket {
  readonly localAddress: PeerAddress;
  #network: MemoryNetwork;
  #queue: Datagram[] = [];
  #waiter: ((d: Datagram | null) => void) | undefined;
  #limit: number;
  #closed = false;

  /** Use {@linkcode MemoryNetwork.socket} instead. */
  constructor(address: PeerAddress, network: MemoryNetwork, limit: number) {
    this.localAddress = address;
    this.#network = network;
    this.#limit = limit;
  }

  send(data: Uint8Array, to: PeerAddress): Promise<void> {
    if (this.#closed) return Promise.reject(new Deno.errors.BadResource("Socket is closed"));
    this.#network.route(data, this.localAddress, to);
    return Promise.resolve();
  }

  /** @internal Called by the network. */
  enqueue(datagram: Datagram): void {
    if (this.#closed) return;
    const waiter = this.#waiter;
    if (waiter !== undefined) {
      this.#waiter = undefined;
      waiter(datagram);
    } else if (this.#queue.length < this.#limit) {
      this.#queue.push(datagram);
    }
  }

  receive(): Promise<Datagram | null> {
    if (this.#closed) return Promise.resolve(null);
    const next = this.#queue.shift();
    if (next !== undefined) return Promise.resolve(next);
    return new Promise((resolve) => this.#waiter = resolve);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#network.unbind(this.localAddress.port);
    this.#queue = [];
    const waiter = this.#waiter;
    this.#waiter = undefined;
    waiter?.(null);
  }
}
