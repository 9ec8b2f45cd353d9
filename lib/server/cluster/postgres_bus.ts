/**
 * The cluster's bus on PostgreSQL LISTEN/NOTIFY (porsager/postgres): a node subscribes through
 * the driver's listening connection, which it puts back (and LISTENs again) after the database
 * restarts or the connection drops; a node publishes with `pg_notify`, either alone or inside the
 * transaction that makes the change, so that nobody hears of a change before it is committed.
 *
 * @module
 */
import postgres from "postgres";
import type { Logger } from "../../shared/logger.ts";
import {
  type Bus,
  BusClosedError,
  checkChannel,
  checkMessage,
  deliver,
  type SubscribeOptions,
  type Unsubscribe,
} from "./bus.ts";
import { CONNECT_TIMEOUT_S } from "./liveness.ts";

/** A connection pool, or a transaction of one: anything that runs a query. */
export type Queryable = postgres.Sql | postgres.TransactionSql;

/**
 * Queues a notification in the transaction `tx`: PostgreSQL delivers it when, and only if, the
 * transaction commits, after the change it announces. Throws a `BusLimitError` (and sends
 * nothing) when the channel or payload is over the bus's limits. Within one transaction,
 * PostgreSQL folds identical notifications (same channel and payload) into one.
 */
export async function notifyInTransaction(
  tx: Queryable,
  channel: string,
  payload: string,
): Promise<void> {
  checkMessage(channel, payload);
  await tx`select pg_notify(${channel}, ${payload})`;
}

/** How a PostgreSQL bus is made. */
export interface PostgresBusOptions {
  /** Hears of subscribers that throw and of failures to stop listening. */
  logger?: Logger;
}

/** The subscribers of one channel on this bus, served by one LISTEN. */
interface Channel {
  readonly subscribers: Set<Subscriber>;
  /** Resolves once the first LISTEN is in place; rejects if it could not be. */
  readonly listening: Promise<postgres.ListenMeta>;
}

interface Subscriber {
  readonly onMessage: (payload: string) => void;
  readonly onSubscribed: (() => void) | undefined;
  /** Whether its `subscribe` call has returned, so a later LISTEN is a reconnection to it. */
  active: boolean;
}

/**
 * A {@linkcode Bus} on one PostgreSQL database. The driver gives listening a connection of its
 * own; when that connection closes, it reconnects with backoff and LISTENs again, and each
 * subscriber's `onSubscribed` is called then, so it can catch up on what it missed.
 */
export class PostgresBus implements Bus {
  readonly #sql: postgres.Sql;
  readonly #owned: boolean;
  readonly #logger: Logger | undefined;
  readonly #channels = new Map<string, Channel>();
  #closed = false;

  /**
   * A bus over `sql`, which the caller keeps and ends after closing the bus. See
   * {@linkcode PostgresBus.connect} for a bus with a pool of its own.
   */
  constructor(sql: postgres.Sql, options: PostgresBusOptions & { owned?: boolean } = {}) {
    this.#sql = sql;
    this.#owned = options.owned ?? false;
    this.#logger = options.logger;
  }

  /** A bus with its own small pool on the database at `url`; `close()` ends the pool. */
  static connect(url: string, options: PostgresBusOptions = {}): PostgresBus {
    const sql = postgres(url, { max: 2, connect_timeout: CONNECT_TIMEOUT_S, onnotice: () => {} });
    return new PostgresBus(sql, { ...options, owned: true });
  }

  async publish(channel: string, payload: string): Promise<void> {
    if (this.#closed) throw new BusClosedError(`publish on ${channel}`);
    await notifyInTransaction(this.#sql, channel, payload);
  }

  async subscribe(
    channel: string,
    onMessage: (payload: string) => void,
    options: SubscribeOptions = {},
  ): Promise<Unsubscribe> {
    if (this.#closed) throw new BusClosedError(`subscribe to ${channel}`);
    checkChannel(channel);
    const subscriber: Subscriber = { onMessage, onSubscribed: options.onSubscribed, active: false };
    const entry = this.#channels.get(channel) ?? this.#listen(channel);
    entry.subscribers.add(subscriber);
    try {
      await entry.listening;
    } catch (error) {
      await this.#drop(channel, entry, subscriber);
      throw error;
    }
    subscriber.active = true;
    subscriber.onSubscribed?.();
    let done = false;
    return async () => {
      if (done) return;
      done = true;
      await this.#drop(channel, entry, subscriber);
    };
  }

  #listen(name: string): Channel {
    const subscribers = new Set<Subscriber>();
    const listening = this.#sql.listen(
      name,
      (payload) => {
        for (const { onMessage } of [...subscribers]) {
          deliver(onMessage, payload, { channel: name, logger: this.#logger });
        }
      },
      () => {
        // The driver calls this at the first LISTEN and again after each reconnection; the
        // first is reported by subscribe() itself.
        for (const subscriber of [...subscribers]) {
          if (subscriber.active) subscriber.onSubscribed?.();
        }
      },
    );
    // A failed first LISTEN is reported by subscribe(); this keeps it from going unhandled.
    listening.catch(() => {});
    const entry: Channel = { subscribers, listening };
    this.#channels.set(name, entry);
    return entry;
  }

  async #drop(name: string, entry: Channel, subscriber: Subscriber): Promise<void> {
    entry.subscribers.delete(subscriber);
    if (entry.subscribers.size > 0 || this.#channels.get(name) !== entry) return;
    this.#channels.delete(name);
    await this.#unlisten(name, entry);
  }

  /**
   * Stops the channel's LISTEN, if it ever started. After a reconnection the driver may keep the
   * LISTEN regardless; with no subscribers left that is harmless, as nobody is called.
   */
  async #unlisten(name: string, entry: Channel): Promise<void> {
    const meta = await entry.listening.catch(() => undefined);
    try {
      await meta?.unlisten();
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      this.#logger?.warn(`Could not stop listening on ${name}: ${reason}`);
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const entries = [...this.#channels];
    this.#channels.clear();
    for (const [, entry] of entries) entry.subscribers.clear();
    if (this.#owned) return await this.#sql.end({ timeout: 5 });
    await Promise.all(entries.map(([name, entry]) => this.#unlisten(name, entry)));
  }
}
