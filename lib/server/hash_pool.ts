/**
 * Bounded work for password hashing: scrypt checks and hashes run at most `concurrency` at a time,
 * each on a worker thread of the pool's own, with at most `queue` waiting; beyond that they are
 * refused at once (ServerBusyError). At the default cost one scrypt takes 16 MiB and about 50 ms
 * of a CPU. node:crypto's asynchronous scrypt would run each on a thread of the runtime's
 * blocking pool: a burst then runs dozens at once, and the C allocator keeps a 16 MiB arena for
 * every thread that ever ran one (a burst of 128 wrong passwords grew the process by 700 MiB,
 * and by 300 MiB even two at a time). A worker runs its scrypt synchronously, on its own thread,
 * so the memory is bounded by the number of workers; the event loop never waits for it.
 */
import { type Derive, type HashCost, scryptMaxmem } from "./credentials.ts";

/** How much hashing may run and wait. */
export interface HashPoolOptions {
  /** Hashes running at once, one worker thread each. */
  concurrency?: number;
  /** Hashes waiting for a turn; more are refused with ServerBusyError. */
  queue?: number;
  /** Workers idle this long are stopped (their memory freed) until work comes again. */
  idleMs?: number;
}

/** Hashes run at once by default: one worker (about 30 MiB with its scrypt memory). */
export const DEFAULT_HASH_CONCURRENCY = 1;
/** Hashes waiting by default: a classroom logging in at once fits, a flood does not. */
export const DEFAULT_HASH_QUEUE = 32;
const DEFAULT_IDLE_MS = 60_000;

/** Hashing was refused because the pool and its queue are full; try again in a moment. */
export class ServerBusyError extends Error {
  constructor() {
    super("The server is busy; try again in a moment.");
    this.name = "ServerBusyError";
  }
}

// The worker is inline (a blob URL) so that a compiled chat-server needs no extra module for it.
const WORKER_SOURCE = `
import { scryptSync } from "node:crypto";
self.onmessage = ({ data }) => {
  const { password, salt, N, r, p, keyLength, maxmem } = data;
  try {
    self.postMessage({ key: scryptSync(password, salt, keyLength, { N, r, p, maxmem }) });
  } catch (error) {
    self.postMessage({ error: String(error) });
  }
};
`;
let workerUrl: string | undefined;

/** One worker thread deriving one key at a time. */
class HashWorker {
  readonly #worker: Worker;
  #pending: { resolve: (key: Uint8Array) => void; reject: (error: Error) => void } | undefined;
  #dead = false;

  constructor() {
    workerUrl ??= URL.createObjectURL(
      new Blob([WORKER_SOURCE], { type: "application/javascript" }),
    );
    this.#worker = new Worker(workerUrl, { type: "module" });
    this.#worker.onmessage = ({ data }: MessageEvent<{ key?: Uint8Array; error?: string }>) => {
      const pending = this.#pending;
      this.#pending = undefined;
      if (data.key) pending?.resolve(data.key);
      else pending?.reject(new Error(data.error ?? "scrypt failed"));
    };
    this.#worker.onerror = (event) => {
      event.preventDefault();
      this.terminate(new Error(`The hash worker failed: ${event.message}`));
    };
  }

  /** Whether it can take more work. */
  get alive(): boolean {
    return !this.#dead;
  }

  readonly derive: Derive = (password, salt, cost: HashCost, keyLength) => {
    if (this.#dead) return Promise.reject(new Error("The hash worker has stopped"));
    return new Promise((resolve, reject) => {
      this.#pending = { resolve, reject };
      const { N, r, p } = cost;
      this.#worker.postMessage({ password, salt, keyLength, maxmem: scryptMaxmem(cost), N, r, p });
    });
  };

  /** Stops the thread; work in progress fails with `reason`. */
  terminate(reason = new Error("The hash worker has stopped")): void {
    if (this.#dead) return;
    this.#dead = true;
    this.#worker.terminate();
    this.#pending?.reject(reason);
    this.#pending = undefined;
  }
}

/**
 * Runs hashing work with a fixed concurrency and a bounded queue. Each piece of work gets a
 * `Derive` bound to a worker thread of its own for as long as it runs. Workers start when work
 * comes and stop after `idleMs` without any; `close()` stops them for good.
 */
export class HashPool {
  readonly concurrency: number;
  readonly queueLimit: number;
  readonly #idleMs: number;
  #running = 0;
  readonly #waiting: Array<() => void> = [];
  readonly #idle: HashWorker[] = [];
  readonly #busy = new Set<HashWorker>();
  #idleTimer: ReturnType<typeof setTimeout> | undefined;
  #closed = false;

  constructor(options: HashPoolOptions = {}) {
    this.concurrency = Math.max(1, options.concurrency ?? DEFAULT_HASH_CONCURRENCY);
    this.queueLimit = Math.max(0, options.queue ?? DEFAULT_HASH_QUEUE);
    this.#idleMs = options.idleMs ?? DEFAULT_IDLE_MS;
  }

  /** Work running now. */
  get running(): number {
    return this.#running;
  }

  /** Work waiting for a turn now. */
  get waiting(): number {
    return this.#waiting.length;
  }

  /** Worker threads alive now. */
  get threads(): number {
    return this.#idle.length + this.#busy.size;
  }

  /**
   * Runs `work` when a turn comes, with a worker's `Derive`; rejects at once with ServerBusyError
   * when the queue is full (or the pool is closed).
   */
  run<T>(work: (derive: Derive) => Promise<T>): Promise<T> {
    if (this.#closed) return Promise.reject(new ServerBusyError());
    if (this.#running < this.concurrency) return this.#start(work);
    if (this.#waiting.length >= this.queueLimit) return Promise.reject(new ServerBusyError());
    return new Promise<T>((resolve, reject) => {
      this.#waiting.push(() => this.#start(work).then(resolve, reject));
    });
  }

  /** Stops every worker; work in progress fails, and later work is refused. */
  close(): void {
    this.#closed = true;
    clearTimeout(this.#idleTimer);
    for (const worker of [...this.#idle, ...this.#busy]) worker.terminate();
    this.#idle.length = 0;
    this.#busy.clear();
    for (const start of this.#waiting.splice(0)) start();
  }

  async #start<T>(work: (derive: Derive) => Promise<T>): Promise<T> {
    this.#running++;
    clearTimeout(this.#idleTimer);
    this.#idleTimer = undefined;
    let worker: HashWorker | undefined;
    // The worker is taken at the first derivation, so work that needs none starts no thread.
    const derive: Derive = (...args) => {
      if (this.#closed) return Promise.reject(new ServerBusyError());
      if (!worker) {
        worker = this.#idle.pop() ?? new HashWorker();
        this.#busy.add(worker);
      }
      return worker.derive(...args);
    };
    try {
      return await work(derive);
    } finally {
      if (worker) {
        this.#busy.delete(worker);
        if (worker.alive && !this.#closed) this.#idle.push(worker);
      }
      this.#running--;
      this.#waiting.shift()?.();
      if (this.#running === 0 && this.#idle.length > 0 && !this.#closed) this.#stopWhenIdle();
    }
  }

  #stopWhenIdle(): void {
    const timer = setTimeout(() => {
      this.#idleTimer = undefined;
      for (const worker of this.#idle.splice(0)) worker.terminate();
    }, this.#idleMs);
    // The timer alone never keeps the process alive.
    Deno.unrefTimer(timer);
    this.#idleTimer = timer;
  }
}
