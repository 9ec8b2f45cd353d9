/**
 * Test doubles for the peer-to-peer seams, shared by the engine's and the client's tests: a clock
 * whose timers run only when a test moves it, and a socket that can be frozen like a stopped
 * process (datagrams wait, in order, and arrive when it thaws).
 */
import type { Clock, Datagram, DatagramSocket, PeerAddress } from "../lib/p2p/mod.ts";

/** Lets pending promise callbacks and zero-delay work run. */
export async function settle(rounds = 10): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise((resolve) => setTimeout(resolve, 0));
}

/** A monotonic clock that moves only through {@linkcode ManualClock.advance}. */
export class ManualClock implements Clock {
  #now = 0;
  #nextHandle = 1;
  readonly #timers = new Map<number, { at: number; fn: () => void }>();

  now(): number {
    return this.#now;
  }

  setTimeout(fn: () => void, ms: number): number {
    const handle = this.#nextHandle++;
    this.#timers.set(handle, { at: this.#now + Math.max(0, ms), fn });
    return handle;
  }

  clearTimeout(handle: unknown): void {
    this.#timers.delete(handle as number);
  }

  /** Moves time forward by `ms`, running each timer that falls due, in order, settling between. */
  async advance(ms: number): Promise<void> {
    const end = this.#now + ms;
    while (true) {
      let next: [number, { at: number; fn: () => void }] | undefined;
      for (const entry of this.#timers) {
        if (entry[1].at <= end && (next === undefined || entry[1].at < next[1].at)) next = entry;
      }
      if (next === undefined) break;
      this.#timers.delete(next[0]);
      this.#now = next[1].at;
      next[1].fn();
      await settle();
    }
    this.#now = end;
    await settle();
  }
}

/**
 * Wraps a socket; while frozen, what it receives waits (as in a stopped process's socket buffer)
 * and is handed over in order once it thaws. Sending is unaffected.
 */
export class FreezableSocket implements DatagramSocket {
  readonly localAddress: PeerAddress;
  readonly #inner: DatagramSocket;
  #thawed: Promise<void> = Promise.resolve();
  #thaw: (() => void) | undefined;

  constructor(inner: DatagramSocket) {
    this.#inner = inner;
    this.localAddress = inner.localAddress;
  }

  /** Holds back everything received from now on. */
  freeze(): void {
    if (this.#thaw) return;
    this.#thawed = new Promise((resolve) => this.#thaw = resolve);
  }

  /** Hands over what was held back, then carries on as normal. */
  thaw(): void {
    this.#thaw?.();
    this.#thaw = undefined;
  }

  send(data: Uint8Array, to: PeerAddress): Promise<void> {
    return this.#inner.send(data, to);
  }

  async receive(): Promise<Datagram | null> {
    const datagram = await this.#inner.receive();
    await this.#thawed;
    return datagram;
  }

  close(): void {
    this.thaw();
    this.#inner.close();
  }
}
