/**
 * The cluster's message bus: a small interface over which nodes tell each other "something
 * changed" (channel + short text payload), its limits, and the in-memory implementation used by
 * tests and single-process setups. The PostgreSQL implementation is in postgres_bus.ts, so that
 * code using only this file never loads the database driver.
 *
 * @module
 */
import type { Logger } from "../../shared/logger.ts";

/** Stops one subscription; calling it again does nothing. */
export type Unsubscribe = () => Promise<void>;

/** What a subscriber is told. */
export interface SubscribeOptions {
  /**
   * Called once the subscription is in place, and again each time it is put back after the bus
   * lost its connection. Messages published while it was gone are not delivered, so this is the
   * moment to catch up from the state itself.
   */
  onSubscribed?: () => void;
}

/**
 * Delivers short messages to every subscriber of a channel, on every node, publisher included.
 * A bus says that something happened; the state it refers to lives elsewhere. Delivery is at most
 * once and in publishing order per publisher; a subscriber that reconnects learns it through
 * `onSubscribed` and must catch up itself.
 */
export interface Bus {
  /** Sends `payload` to the channel's subscribers; rejects a payload or channel over the limits. */
  publish(channel: string, payload: string): Promise<void>;
  /** Calls `onMessage` with each payload published on the channel from now on. */
  subscribe(
    channel: string,
    onMessage: (payload: string) => void,
    options?: SubscribeOptions,
  ): Promise<Unsubscribe>;
  /** Ends every subscription; publishing or subscribing afterwards is refused. */
  close(): Promise<void>;
}

/**
 * The largest payload in UTF-8 bytes: PostgreSQL refuses a NOTIFY payload of 8000 bytes or more
 * (NOTIFY_PAYLOAD_MAX_LENGTH, in its default build). Every bus keeps to it, so code that works on
 * the in-memory bus works on PostgreSQL.
 */
export const MAX_PAYLOAD_BYTES = 7999;

/** The longest channel name in bytes: a PostgreSQL identifier (NAMEDATALEN - 1). */
export const MAX_CHANNEL_BYTES = 63;

/** A payload or channel name the bus cannot carry; nothing was sent. */
export class BusLimitError extends RangeError {
  constructor(message: string) {
    super(message);
    this.name = "BusLimitError";
  }
}

/** The bus was closed before the call. */
export class BusClosedError extends Error {
  constructor(action: string) {
    super(`Cannot ${action}: the bus is closed`);
    this.name = "BusClosedError";
  }
}

const encoder = new TextEncoder();

/** Throws a {@linkcode BusLimitError} unless the channel and payload fit every bus. */
export function checkMessage(channel: string, payload: string): void {
  checkChannel(channel);
  const bytes = encoder.encode(payload).length;
  if (bytes > MAX_PAYLOAD_BYTES) {
    throw new BusLimitError(
      `Cannot publish on ${channel}: the payload is ${bytes} bytes, ` +
        `over the limit of ${MAX_PAYLOAD_BYTES}`,
    );
  }
}

/** Throws a {@linkcode BusLimitError} unless the channel name is usable on every bus. */
export function checkChannel(channel: string): void {
  const bytes = encoder.encode(channel).length;
  if (bytes === 0) throw new BusLimitError("Cannot use an empty channel name");
  if (bytes > MAX_CHANNEL_BYTES) {
    throw new BusLimitError(
      `Cannot use channel ${JSON.stringify(channel.slice(0, 20))}...: its name is ${bytes} ` +
        `bytes, over the limit of ${MAX_CHANNEL_BYTES}`,
    );
  }
  if (channel.includes("\0")) throw new BusLimitError("Cannot use a channel name holding NUL");
}

/**
 * Calls a subscriber with one payload. What it throws is the subscriber's failure, not the bus's:
 * it goes to the logger (or, without one, to the runtime's `reportError`), and delivery to the
 * others carries on.
 */
export function deliver(
  onMessage: (payload: string) => void,
  payload: string,
  where: { channel: string; logger?: Logger | undefined },
): void {
  try {
    onMessage(payload);
  } catch (error) {
    if (!where.logger) return reportError(error);
    const reason = error instanceof Error ? error.message : String(error);
    where.logger.warn(`A subscriber of ${where.channel} failed on a message: ${reason}`);
  }
}

type Handler = (payload: string) => void;

/**
 * Where in-memory buses meet: every bus made by one hub hears what any of them publishes, as the
 * nodes of a cluster do through PostgreSQL.
 */
export class MemoryBusHub {
  readonly #buses = new Set<MemoryBus>();
  readonly #logger: Logger | undefined;

  /** `logger` hears of subscribers that throw. */
  constructor(options: { logger?: Logger } = {}) {
    this.#logger = options.logger;
  }

  /** A new bus (a "node") attached to this hub. */
  connect(): Bus {
    const bus = new MemoryBus(this.#buses, this.#logger);
    this.#buses.add(bus);
    return bus;
  }
}

/**
 * One node's view of a {@linkcode MemoryBusHub}. Delivery is asynchronous (a later microtask, as
 * a real bus never calls back inside `publish`) and in publishing order.
 */
class MemoryBus implements Bus {
  readonly #buses: Set<MemoryBus>;
  readonly #channels = new Map<string, Set<Handler>>();
  readonly #logger: Logger | undefined;
  #closed = false;

  constructor(buses: Set<MemoryBus>, logger: Logger | undefined) {
    this.#buses = buses;
    this.#logger = logger;
  }

  publish(channel: string, payload: string): Promise<void> {
    if (this.#closed) return Promise.reject(new BusClosedError(`publish on ${channel}`));
    try {
      checkMessage(channel, payload);
    } catch (error) {
      return Promise.reject(error);
    }
    // Who hears it is fixed now, as PostgreSQL fixes it at commit.
    for (const bus of this.#buses) {
      for (const handler of bus.#channels.get(channel) ?? []) {
        queueMicrotask(() => {
          // A subscriber that left before delivery no longer hears it.
          if (bus.#channels.get(channel)?.has(handler)) handler(payload);
        });
      }
    }
    return Promise.resolve();
  }

  subscribe(
    channel: string,
    onMessage: (payload: string) => void,
    options: SubscribeOptions = {},
  ): Promise<Unsubscribe> {
    if (this.#closed) return Promise.reject(new BusClosedError(`subscribe to ${channel}`));
    try {
      checkChannel(channel);
    } catch (error) {
      return Promise.reject(error);
    }
    // Each subscription gets a handler of its own, so one function may subscribe twice.
    const handler: Handler = (payload) =>
      deliver(onMessage, payload, { channel, logger: this.#logger });
    let handlers = this.#channels.get(channel);
    if (!handlers) this.#channels.set(channel, handlers = new Set());
    handlers.add(handler);
    options.onSubscribed?.();
    return Promise.resolve(() => {
      handlers.delete(handler);
      if (handlers.size === 0 && this.#channels.get(channel) === handlers) {
        this.#channels.delete(channel);
      }
      return Promise.resolve();
    });
  }

  close(): Promise<void> {
    this.#closed = true;
    this.#channels.clear();
    this.#buses.delete(this);
    return Promise.resolve();
  }
}
