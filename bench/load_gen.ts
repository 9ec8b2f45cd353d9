/**
 * The load generator of bench/load.ts: many clients in one process, each a raw `Deno.Conn` (TCP,
 * or TLS with `caCerts` set to the server's self-signed certificate) read with `conn.read()` into
 * one small buffer of its own and written with `conn.write()`; no streams, no per-frame objects.
 * Lines are split by scanning for `\n` and classified by looking at a few bytes, so that the
 * generator spends as little as it can per delivery; the server runs on the same machine.
 *
 * Two protocols speak the same shape:
 *
 * - TOOM (docs/PROTOCOL.md): login = hello + user + pass (one write); fan-out = `broadcast
 *   <text>` (each recipient gets an event of kind `broadcast`); direct message = `message <user>
 *   <text>` (an event of kind `message`); presence = the `presence` events `<user> logged in`.
 *   A frame whose fields are not in the order this server writes them is parsed with JSON.parse.
 * - IRC: login = NICK + USER + JOIN of one channel (done at RPL_ENDOFNAMES, 366); fan-out =
 *   PRIVMSG to the channel; direct message = PRIVMSG to a nick; presence = the JOIN lines.
 */

/** Bytes of one connection's read buffer: larger for the clients that send or take bursts. */
const BIG_BUFFER = 16 * 1024;
const SMALL_BUFFER = 4 * 1024;
/** Clients below this index get the big buffer (fan-out and direct-message clients). */
const BIG_CLIENTS = 1024;
/**
 * Connections of a batch opened and not yet answered, at most: ngircd listens with a backlog
 * of 10, and a burst of connections beyond its accept queue has SYNs dropped and retried by the
 * kernel seconds later, which would measure the kernel's retry timer, not the server.
 */
export const CONNECT_WINDOW = 8;
/** A client that has sent nothing for this long sends a heartbeat (TOOM). */
const HEARTBEAT_MS = 15_000;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** How a client is reached. */
export interface Endpoint {
  port: number;
  /** PEM of the server's certificate when it speaks TLS (trusted as the only authority). */
  tlsCert?: string;
}

/** One simulated user. */
export class Client {
  readonly index: number;
  readonly name: string;
  conn: Deno.Conn | undefined;
  readonly buf: Uint8Array;
  /** The start of a line whose end has not arrived yet. */
  partial: Uint8Array | undefined;
  open = false;
  loggedIn = false;
  /** Whether the server has sent anything yet (its accept queue is past this connection). */
  answered = false;
  /** Whether the login has finished, either way. */
  settled = false;
  /** Why the login failed, or the first error the server sent. */
  failure: string | undefined;
  /** Next request id (TOOM). */
  nextId = 3;
  /** Fan-out messages received in the current phase, and how many are expected. */
  fanout = 0;
  fanoutExpect = 0;
  /** Acknowledgements received (TOOM: command replies; IRC: PONGs). */
  acks = 0;
  ackTarget = 0;
  ackResolve: (() => void) | undefined;
  /** Called on each direct message received. */
  onDirect: (() => void) | undefined;

  constructor(index: number, name: string) {
    this.index = index;
    this.name = name;
    this.buf = new Uint8Array(index < BIG_CLIENTS ? BIG_BUFFER : SMALL_BUFFER);
  }

  /** Waits until `acks` reaches `target` (or the connection closes). */
  waitAcks(target: number): Promise<void> {
    if (this.acks >= target || !this.open) return Promise.resolve();
    this.ackTarget = target;
    return new Promise((resolve) => this.ackResolve = resolve);
  }

  /** When this client last sent something (performance.now()). */
  lastSent = 0;

  /** Writes all of `bytes`; errors close the client. */
  async send(bytes: Uint8Array): Promise<void> {
    const conn = this.conn;
    if (!conn || !this.open) return;
    this.lastSent = performance.now();
    try {
      let off = 0;
      while (off < bytes.length) off += await conn.write(off ? bytes.subarray(off) : bytes);
    } catch (error) {
      this.failure ??= `write failed: ${(error as Error).message}`;
    }
  }

  close(): void {
    if (!this.conn) return;
    try {
      this.conn.close();
    } catch {
      // Already closed.
    }
  }
}

/** A protocol's bytes and how it reads lines. */
export interface Protocol {
  readonly kind: "toom" | "irc";
  /** Everything a client sends to log in, in one write. */
  login(client: Client, password: string): Uint8Array;
  /** One fan-out message. */
  broadcast(client: Client, text: string): Uint8Array;
  /** What acknowledges a chunk of fan-out messages: IRC appends a PING; TOOM replies to each. */
  sync(client: Client, token: string): Uint8Array | undefined;
  /** Acknowledgements one chunk of `size` messages earns. */
  acksPerChunk(size: number): number;
  /** What keeps an idle connection alive (TOOM: `ping` every 15 s), if anything. */
  heartbeat(): Uint8Array | undefined;
  /** A direct message to `to`. */
  direct(client: Client, to: string, text: string): Uint8Array;
  /** Presence lines a login causes when `onlineBefore` users are logged in already. */
  presencePerLogin(onlineBefore: number): number;
  /** Handles one line, bytes [start, end) of `b` (the `\n` excluded). */
  line(gen: LoadGenerator, client: Client, b: Uint8Array, start: number, end: number): void;
}

/** The clients of one run against one server, and what they have received. */
export class LoadGenerator {
  readonly protocol: Protocol;
  readonly endpoint: Endpoint;
  readonly clients: Client[] = [];
  /** Names are this prefix and the client's index. */
  readonly prefix: string;
  /** Connections opened and not yet answered, at most. */
  connectWindow = CONNECT_WINDOW;
  /** Presence lines for logins ("logged in", JOIN) received in total. */
  presence = 0;
  presenceTarget = Infinity;
  presenceResolve: (() => void) | undefined;
  /** When the presence target was reached (performance.now()). */
  presenceDoneAt = 0;
  /** Presence lines for departures. */
  departures = 0;
  /** Recipients who have not yet received every fan-out message of the phase. */
  fanoutRemaining = 0;
  fanoutResolve: (() => void) | undefined;
  fanoutDoneAt = 0;
  /** Logins of the current batch still to finish (either way). */
  loginsPending = 0;
  loginsResolve: (() => void) | undefined;
  loginsDoneAt = 0;
  /** Server errors and failed logins seen (the first few kept). */
  errors: string[] = [];
  errorCount = 0;
  /** Bytes received in total. */
  bytesIn = 0;

  #heartbeats: ReturnType<typeof setInterval> | undefined;

  constructor(protocol: Protocol, endpoint: Endpoint, prefix = "u") {
    this.protocol = protocol;
    this.endpoint = endpoint;
    this.prefix = prefix;
    const heartbeat = protocol.heartbeat();
    if (heartbeat) {
      // As a real client does: a heartbeat after 15 s without sending anything (the server drops
      // a connection silent for 45 s).
      this.#heartbeats = setInterval(() => {
        const due = performance.now() - HEARTBEAT_MS;
        for (const client of this.clients) {
          if (client.open && client.lastSent < due) void client.send(heartbeat);
        }
      }, 1000);
      Deno.unrefTimer(this.#heartbeats);
    }
  }

  get loggedIn(): number {
    let count = 0;
    for (const client of this.clients) if (client.loggedIn && client.open) count++;
    return count;
  }

  error(client: Client, text: string): void {
    client.failure ??= text;
    this.errorCount++;
    if (this.errors.length < 10) this.errors.push(`${client.name}: ${text}`);
  }

  /** A client finished logging in (ok or not). */
  loginDone(client: Client, ok: boolean, why?: string): void {
    if (client.settled) return;
    client.settled = true;
    if (ok) client.loggedIn = true;
    else this.error(client, why ?? "login failed");
    if (--this.loginsPending === 0) {
      this.loginsDoneAt = performance.now();
      this.loginsResolve?.();
    }
  }

  /** A presence line for a login arrived. */
  arrived(): void {
    if (++this.presence >= this.presenceTarget && this.presenceResolve) {
      this.presenceDoneAt = performance.now();
      const resolve = this.presenceResolve;
      this.presenceResolve = undefined;
      resolve();
    }
  }

  /** A fan-out message arrived at `client`. */
  fanned(client: Client): void {
    if (++client.fanout === client.fanoutExpect && --this.fanoutRemaining === 0) {
      this.fanoutDoneAt = performance.now();
      this.fanoutResolve?.();
    }
  }

  ack(client: Client): void {
    if (++client.acks >= client.ackTarget && client.ackResolve) {
      const resolve = client.ackResolve;
      client.ackResolve = undefined;
      resolve();
    }
  }

  /**
   * Connects clients [from, to) at once and logs them in; resolves when every one of them has
   * finished (logged in or failed), or rejects after `timeoutMs`.
   */
  async loginBatch(from: number, to: number, password: (i: number) => string, timeoutMs: number) {
    const done = new Promise<void>((resolve) => this.loginsResolve = resolve);
    this.loginsPending = to - from;
    const starts: Promise<void>[] = [];
    for (let i = from; i < to; i++) {
      const client = this.clients[i] ?? new Client(i, `${this.prefix}${i}`);
      this.clients[i] = client;
      starts.push(this.#start(client, password(i)));
    }
    await within(Promise.all(starts), timeoutMs, `connecting clients ${from}–${to - 1}`);
    await within(done, timeoutMs, `logging in clients ${from}–${to - 1}`);
  }

  /** Connections opened and not yet answered by the server. */
  #connecting = 0;
  #connectWaiters: Array<() => void> = [];

  /** Waits for a turn to connect (at most CONNECT_WINDOW connections not yet answered). */
  async #connectTurn(): Promise<void> {
    while (this.#connecting >= this.connectWindow) {
      await new Promise<void>((resolve) => this.#connectWaiters.push(resolve));
    }
    this.#connecting++;
  }

  /** The server answered a new connection (or it closed): the next one may connect. */
  #answered(client: Client): void {
    if (client.answered) return;
    client.answered = true;
    this.#connecting--;
    this.#connectWaiters.shift()?.();
  }

  async #start(client: Client, password: string): Promise<void> {
    await this.#connectTurn();
    try {
      const { port, tlsCert } = this.endpoint;
      // No Nagle delay on this side (Deno.connectTls cannot turn it off; startTls keeps it off).
      const tcp = await Deno.connect({ hostname: "127.0.0.1", port });
      tcp.setNoDelay(true);
      client.conn = tlsCert
        ? await Deno.startTls(tcp, { hostname: "127.0.0.1", caCerts: [tlsCert] })
        : tcp;
    } catch (error) {
      this.#answered(client);
      this.loginDone(client, false, `connect failed: ${(error as Error).message}`);
      return;
    }
    client.open = true;
    void this.#pump(client);
    await client.send(this.protocol.login(client, password));
  }

  async #pump(client: Client): Promise<void> {
    const conn = client.conn!;
    const buf = client.buf;
    try {
      for (;;) {
        const n = await conn.read(buf);
        if (n === null) break;
        if (!client.answered) this.#answered(client);
        this.bytesIn += n;
        this.#feed(client, buf, n);
      }
    } catch (error) {
      if (!(error instanceof Deno.errors.BadResource || error instanceof Deno.errors.Interrupted)) {
        client.failure ??= `read failed: ${(error as Error).message}`;
      }
    }
    client.open = false;
    this.#answered(client);
    client.close();
    if (!client.settled) this.loginDone(client, false, client.failure ?? "closed before login");
    client.ackResolve?.();
    client.ackResolve = undefined;
  }

  #feed(client: Client, buf: Uint8Array, n: number): void {
    let start = 0;
    let newline = buf.indexOf(10);
    if (client.partial) {
      if (newline < 0 || newline >= n) {
        const joined = new Uint8Array(client.partial.length + n);
        joined.set(client.partial);
        joined.set(buf.subarray(0, n), client.partial.length);
        client.partial = joined;
        return;
      }
      const line = new Uint8Array(client.partial.length + newline);
      line.set(client.partial);
      line.set(buf.subarray(0, newline), client.partial.length);
      client.partial = undefined;
      this.protocol.line(this, client, line, 0, line.length);
      start = newline + 1;
      newline = buf.indexOf(10, start);
    }
    while (newline >= 0 && newline < n) {
      this.protocol.line(this, client, buf, start, newline);
      start = newline + 1;
      newline = buf.indexOf(10, start);
    }
    if (start < n) client.partial = buf.slice(start, n);
  }

  /** Closes every client. */
  closeAll(): void {
    clearInterval(this.#heartbeats);
    for (const client of this.clients) client.close();
  }
}

/** Rejects after `ms` unless `promise` settles first. */
export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms / 1000} s ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// -----------------------------------------------------------------------------------------------
// TOOM

function bytesOf(text: string): Uint8Array {
  return encoder.encode(text);
}

function startsWith(b: Uint8Array, at: number, end: number, prefix: Uint8Array): boolean {
  if (end - at < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) if (b[at + i] !== prefix[i]) return false;
  return true;
}

const EVENT = bytesOf('{"t":"event","kind":"');
const PRESENCE_LINES = bytesOf('presence","lines":["');
const REPLY = bytesOf('{"t":"reply","id":');
const OK_TRUE = bytesOf(',"ok":true');
const HELLO = bytesOf('{"t":"hello"');
const PONG = bytesOf('{"t":"pong"');
const QUOTE = 34;
const PING = bytesOf('{"t":"ping"}\n');

export class ToomProtocol implements Protocol {
  readonly kind = "toom";

  login(client: Client, password: string): Uint8Array {
    return bytesOf(
      '{"t":"hello","v":1,"agent":"toom-load/1"}\n' +
        `{"t":"user","id":1,"name":"${client.name}"}\n` +
        `{"t":"pass","id":2,"password":"${password}","udpPort":0}\n`,
    );
  }

  broadcast(client: Client, text: string): Uint8Array {
    return bytesOf(`{"t":"cmd","id":${client.nextId++},"line":"broadcast ${text}"}\n`);
  }

  sync(): undefined {
    return undefined;
  }

  heartbeat(): Uint8Array {
    return PING;
  }

  acksPerChunk(size: number): number {
    return size;
  }

  direct(client: Client, to: string, text: string): Uint8Array {
    return bytesOf(`{"t":"cmd","id":${client.nextId++},"line":"message ${to} ${text}"}\n`);
  }

  presencePerLogin(onlineBefore: number): number {
    return onlineBefore;
  }

  line(gen: LoadGenerator, client: Client, b: Uint8Array, s: number, e: number): void {
    if (startsWith(b, s, e, EVENT)) {
      const kind = b[s + EVENT.length];
      if (kind === 98 /* b */) return gen.fanned(client);
      if (kind === 112 /* p */ && startsWith(b, s + EVENT.length, e, PRESENCE_LINES)) {
        // `"lines":["<user> logged in"]` or `… logged out"]`.
        const from = s + EVENT.length + PRESENCE_LINES.length;
        const quote = b.indexOf(QUOTE, from);
        if (quote > 0 && quote < e && b[quote - 1] === 110 /* n */) gen.arrived();
        else gen.departures++;
        return;
      }
      if (kind === 109 /* m */ && b[s + EVENT.length + 1] === 101 /* e */) {
        return client.onDirect?.();
      }
      return this.#slow(gen, client, b, s, e);
    }
    if (startsWith(b, s, e, REPLY)) {
      let i = s + REPLY.length;
      let id = 0;
      while (i < e && b[i]! >= 48 && b[i]! <= 57) id = id * 10 + b[i++]! - 48;
      if (!startsWith(b, i, e, OK_TRUE)) return this.#slow(gen, client, b, s, e);
      if (id === 2) gen.loginDone(client, true);
      else if (id >= 3) gen.ack(client);
      return;
    }
    if (startsWith(b, s, e, HELLO) || startsWith(b, s, e, PONG)) return;
    this.#slow(gen, client, b, s, e);
  }

  /** Any frame, parsed in full. */
  #slow(gen: LoadGenerator, client: Client, b: Uint8Array, s: number, e: number): void {
    const text = decoder.decode(b.subarray(s, e));
    let frame: {
      t?: string;
      kind?: string;
      id?: number;
      ok?: boolean;
      lines?: string[];
      code?: string;
      text?: string;
      data?: { what?: string };
    };
    try {
      frame = JSON.parse(text);
    } catch {
      return gen.error(client, `unparsable frame: ${text.slice(0, 100)}`);
    }
    if (frame.t === "event") {
      if (frame.kind === "broadcast") gen.fanned(client);
      else if (frame.kind === "presence") {
        if (frame.data?.what === "logged in") gen.arrived();
        else gen.departures++;
      } else if (frame.kind === "message") client.onDirect?.();
      else if (frame.kind === "logout") gen.error(client, `logged out: ${frame.lines?.join(" ")}`);
    } else if (frame.t === "reply") {
      const id = frame.id ?? 0;
      if (!frame.ok) {
        const why = `${frame.code}: ${frame.lines?.join(" ")}`;
        if (id <= 2) gen.loginDone(client, false, why);
        else {
          gen.error(client, why);
          gen.ack(client);
        }
      } else if (id === 2) gen.loginDone(client, true);
      else if (id >= 3) gen.ack(client);
    } else if (frame.t === "error") {
      // `shutdown` is what a clean stop says; anything else is worth reporting.
      if (frame.code !== "shutdown") gen.error(client, `${frame.code}: ${frame.text}`);
    }
  }
}

// -----------------------------------------------------------------------------------------------
// IRC

/** The channel every IRC client joins. */
export const CHANNEL = "#bench";

export class IrcProtocol implements Protocol {
  readonly kind = "irc";

  login(client: Client): Uint8Array {
    return bytesOf(
      `NICK ${client.name}\r\nUSER ${client.name} 0 * :load\r\nJOIN ${CHANNEL}\r\n`,
    );
  }

  broadcast(_client: Client, text: string): Uint8Array {
    return bytesOf(`PRIVMSG ${CHANNEL} :${text}\r\n`);
  }

  sync(_client: Client, token: string): Uint8Array {
    return bytesOf(`PING :${token}\r\n`);
  }

  acksPerChunk(): number {
    return 1;
  }

  heartbeat(): undefined {
    // ngircd is configured with PingTimeout 3600; a PING it sends is answered anyway.
    return undefined;
  }

  direct(_client: Client, to: string, text: string): Uint8Array {
    return bytesOf(`PRIVMSG ${to} :${text}\r\n`);
  }

  presencePerLogin(onlineBefore: number): number {
    // JOIN goes to every member, the joiner included.
    return onlineBefore + 1;
  }

  line(gen: LoadGenerator, client: Client, b: Uint8Array, s: number, e: number): void {
    if (e > s && b[e - 1] === 13) e--;
    let p = s;
    if (b[p] === 58 /* : */) {
      p = b.indexOf(32, p);
      if (p < 0 || p >= e) return;
      p++;
    }
    let q = b.indexOf(32, p);
    if (q < 0 || q > e) q = e;
    const length = q - p;
    const c0 = b[p];
    if (length === 7 && c0 === 80 /* P */ && b[p + 1] === 82 /* R */) {
      // PRIVMSG <target> :text
      if (b[q + 1] === 35 /* # */) gen.fanned(client);
      else client.onDirect?.();
    } else if (length === 4 && c0 === 74 /* J */) {
      gen.arrived();
    } else if (length === 3 && c0! >= 48 && c0! <= 57) {
      const code = (c0! - 48) * 100 + (b[p + 1]! - 48) * 10 + (b[p + 2]! - 48);
      if (code === 366) gen.loginDone(client, true);
      else if (code >= 400 && code !== 422) {
        const text = decoder.decode(b.subarray(s, e));
        if (!client.loggedIn) gen.loginDone(client, false, text);
        else gen.error(client, text);
      }
    } else if (length === 4 && c0 === 80 /* P */ && b[p + 1] === 79 /* O */) {
      gen.ack(client);
    } else if (length === 4 && c0 === 81 /* Q */) {
      gen.departures++;
    } else if (length === 4 && c0 === 80 /* P */ && b[p + 1] === 73 /* I */) {
      void client.send(bytesOf(`PONG ${decoder.decode(b.subarray(q + 1, e))}\r\n`));
    } else if (length === 5 && c0 === 69 /* E */) {
      // `ERROR :Server going down` is what a clean stop says.
      const text = decoder.decode(b.subarray(s, e));
      if (!text.includes("going down")) gen.error(client, text);
    }
  }
}
