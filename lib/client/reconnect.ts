/**
 * Staying connected: when the link to the server is lost after login, the client connects again
 * with capped exponential backoff, logs in again with the same credentials (kept in memory only)
 * and UDP port, and carries on. `Backoff` (backoff.ts) is the pure schedule; `ReconnectingLink`
 * is the link the command loop talks to, which swaps a new `ServerLink` in under it. Requests made while it is
 * reconnecting wait for it; a request in flight when the link died fails with
 * `RequestInDoubtError`, because the server may or may not have carried it out.
 */
import { type Clock, SYSTEM_CLOCK } from "../p2p/mod.ts";
import { readCommandLine } from "../shared/commands.ts";
import type { EventFrame } from "../shared/protocol.ts";
import { type Connection, TransportError } from "../shared/transport.ts";
import {
  CONNECTION_LOST,
  ConnectionLostError,
  type Reply,
  type Request,
  ServerLink,
} from "./server_link.ts";
import type { Terminal } from "./terminal.ts";
import { Backoff } from "./backoff.ts";

/** How the client reconnects; every field has a default. */
export interface ReconnectPolicy {
  /** How long to keep trying after the connection is lost (default 2 minutes); 0 = never. */
  forMs?: number;
  initialMs?: number;
  maxMs?: number;
  jitter?: number;
  /** How long one attempt (connect, hello, login) may take before it counts as failed. */
  attemptTimeoutMs?: number;
}

/** What to log in again with. */
export interface Credentials {
  user: string;
  password: string;
  udpPort: number;
}

/** Credentials as kept: after a password change in doubt, the new password to try as well. */
type KeptCredentials = Credentials & { fallback?: string };

/**
 * How the session ended for good: logged out (`blocked` when the server logged the user out
 * because their account was locked), or lost with a message.
 */
export type LinkEnd = { loggedOut: true; blocked?: boolean } | {
  loggedOut: false;
  message: string;
};

/** Options for a reconnecting link. */
export interface ReconnectingLinkOptions {
  /** The first connection, already open. */
  conn: Connection;
  /** Opens a new connection to the same server; without it a lost connection is the end. */
  connect?: () => Promise<Connection>;
  /** Where the status line and the news of losing and regaining the server go. */
  terminal: Terminal;
  onEvent: (event: EventFrame) => void;
  heartbeatMs?: number;
  /** Time and timers for the backoff, attempts and each link (the runtime's by default). */
  clock?: Clock;
  /** Jitter source (Math.random by default). */
  random?: () => number;
  reconnect?: ReconnectPolicy;
}

/** The status line key while reconnecting. */
export const CONNECTION_STATUS = "connection";
/** The message when the reconnect deadline passes. */
export const GIVE_UP = "Could not reconnect to the server; giving up.";

const DEFAULT_RECONNECT_MS = 120_000;
const ATTEMPT_TIMEOUT_MS = 10_000;
/** Refusals that do not end reconnecting: a later attempt may be let in (any other ends it). */
const RETRY_CODES = new Set([
  "already-online",
  "rate-limited",
  "not-allowed",
  "busy",
  "throttled",
  "unavailable",
]);

/**
 * Thrown by `ReconnectingLink.request` when the connection was lost after the request was sent
 * and before its answer came: the server may or may not have carried it out. It is not sent
 * again, since commands such as MSG are not safe to repeat.
 */
export class RequestInDoubtError extends Error {
  constructor(request: Request) {
    super(
      `The connection was lost before the server answered ${
        describe(request)
      }; it may or may not have been carried out.`,
    );
    this.name = "RequestInDoubtError";
  }
}

function describe(request: Request): string {
  switch (request.t) {
    case "cmd": {
      const line = request.line.trim();
      return `"${line.length > 60 ? line.slice(0, 59) + "…" : line}"`;
    }
    case "passwd":
      return "the password change";
    case "answer":
      return "your answer";
    default:
      return "the login";
  }
}

function isLogout(request: Request): boolean {
  return request.t === "cmd" && readCommandLine(request.line).spec?.name === "OUT";
}

type State = "up" | "reconnecting" | "ended";

/**
 * The link the client's command loop uses: a `ServerLink` that is replaced by a fresh one, logged
 * in again, when the connection is lost after `loggedIn()`. Before that (at the login prompts), or
 * without `connect`, a lost connection ends it at once.
 */
export class ReconnectingLink {
  readonly #options: ReconnectingLinkOptions;
  readonly #clock: Clock;
  #link: ServerLink;
  #state: State = "up";
  #credentials: KeptCredentials | undefined;
  /** OUT has been sent: the server closing the connection is expected, not lost. */
  #leaving = false;
  /** The server logged this user out (inactivity, a login elsewhere): the end, not a loss. */
  #loggedOut = false;
  /** The server's logout said the account is locked (a `passwd` failure locked it). */
  #blocked = false;
  #waiters: Array<{ resolve: (link: ServerLink) => void; reject: (error: Error) => void }> = [];
  /** Waits of the reconnect in progress (each cancels its timer and wakes its waiter). */
  readonly #sleeps = new Set<() => void>();
  /** The link the reconnect in progress is logging in. */
  #trying: ServerLink | undefined;
  #statusShown = false;
  /** Settles once the session has ended for good (not when a reconnect begins). */
  readonly ended: Promise<LinkEnd>;
  #resolveEnded!: (end: LinkEnd) => void;

  constructor(options: ReconnectingLinkOptions) {
    this.#options = options;
    this.#clock = options.clock ?? SYSTEM_CLOCK;
    this.ended = new Promise((resolve) => this.#resolveEnded = resolve);
    this.#link = this.#newLink(options.conn);
    this.#watch(this.#link);
  }

  /** The current link (a new one after each reconnect). */
  get link(): ServerLink {
    return this.#link;
  }

  /** Whether a reconnect is in progress. */
  get reconnecting(): boolean {
    return this.#state === "reconnecting";
  }

  /** Says hello on the first connection. */
  hello(): Promise<string> {
    return this.#link.hello();
  }

  /** Arms reconnecting: from now on a lost connection logs in again with these. */
  loggedIn(credentials: Credentials): void {
    this.#credentials = { ...credentials };
  }

  /**
   * Sends a request and resolves with its reply. While reconnecting it waits for the new link; a
   * request the lost link never sent goes out on the new one. Rejects with `RequestInDoubtError`
   * when the link was lost after sending it, and with `ConnectionLostError` once the session ends.
   */
  async request(request: Request): Promise<Reply> {
    const logout = isLogout(request);
    if (logout) this.#leaving = true;
    // Leaving while the server is away: the lost connection already logged the user out there.
    if (logout && this.#state === "reconnecting") {
      this.#end({ loggedOut: false, message: CONNECTION_LOST });
      throw new ConnectionLostError();
    }
    while (true) {
      const link = await this.#up();
      try {
        const reply = await link.request(request);
        if (request.t === "passwd" && reply.ok && this.#credentials) {
          this.#credentials.password = request.new;
        }
        // Logged out: the server closing the connection next is the expected end.
        if (logout && reply.ok) this.#loggedOut = true;
        else if (logout) this.#leaving = false;
        return reply;
      } catch (error) {
        if (!(error instanceof ConnectionLostError)) throw error;
        // Let the loss be judged (reconnect or end) before deciding what this request does.
        this.#lost(link, await link.closed);
        if (this.#state === "ended") throw new ConnectionLostError(await this.#endMessage());
        // A password change in doubt: the new password is tried if the old one is refused.
        if (error.sent && request.t === "passwd" && this.#credentials) {
          this.#credentials.fallback = request.new;
        }
        if (error.sent) throw new RequestInDoubtError(request);
      }
    }
  }

  /** Ends everything now (the client is exiting): no reconnect, pending requests fail. */
  close(): void {
    if (this.#state !== "ended") this.#end({ loggedOut: false, message: CONNECTION_LOST });
    this.#link.close();
  }

  #newLink(conn: Connection): ServerLink {
    return new ServerLink(conn, {
      ...(this.#options.heartbeatMs ? { heartbeatMs: this.#options.heartbeatMs } : {}),
      ...(this.#options.clock ? { clock: this.#options.clock } : {}),
      onEvent: (event) => {
        if (event.kind === "logout") {
          this.#loggedOut = true;
          this.#blocked ||= event.data.reason === "blocked";
        }
        this.#options.onEvent(event);
      },
    });
  }

  #watch(link: ServerLink): void {
    void link.closed.then((reason) => this.#lost(link, reason));
  }

  async #endMessage(): Promise<string> {
    const end = await this.ended;
    return end.loggedOut ? CONNECTION_LOST : end.message;
  }

  #up(): Promise<ServerLink> {
    if (this.#state === "up") return Promise.resolve(this.#link);
    if (this.#state === "ended") {
      return this.#endMessage().then((message) => Promise.reject(new ConnectionLostError(message)));
    }
    return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject }));
  }

  /** Judges the end of `link`, once: the end of the session, or a reason to reconnect. */
  #lost(link: ServerLink, reason: string): void {
    if (link !== this.#link || this.#state !== "up") return;
    if (this.#loggedOut) return this.#end({ loggedOut: true, blocked: this.#blocked });
    const forMs = this.#options.reconnect?.forMs ?? DEFAULT_RECONNECT_MS;
    const canReconnect = reason === CONNECTION_LOST && this.#credentials !== undefined &&
      this.#options.connect !== undefined && forMs > 0 && !this.#leaving;
    if (!canReconnect) return this.#end({ loggedOut: false, message: reason });
    this.#state = "reconnecting";
    void this.#reconnect(this.#credentials!, forMs);
  }

  #end(end: LinkEnd): void {
    this.#finish();
    this.#resolveEnded(end);
  }

  #finish(): void {
    this.#state = "ended";
    for (const cancel of [...this.#sleeps]) cancel();
    this.#trying?.close();
    this.#status(null);
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const waiter of waiters) waiter.reject(new ConnectionLostError());
  }

  async #reconnect(
    credentials: KeptCredentials,
    forMs: number,
  ): Promise<void> {
    const { terminal, reconnect: policy = {} } = this.#options;
    terminal.print(`${CONNECTION_LOST}; reconnecting...`, "error");
    const backoff = new Backoff(
      {
        giveUpAfterMs: forMs,
        ...(policy.initialMs !== undefined ? { initialMs: policy.initialMs } : {}),
        ...(policy.maxMs !== undefined ? { maxMs: policy.maxMs } : {}),
        ...(policy.jitter !== undefined ? { jitter: policy.jitter } : {}),
      },
      { clock: this.#clock, ...(this.#options.random ? { random: this.#options.random } : {}) },
    );
    while (this.#state === "reconnecting") {
      const next = backoff.next();
      if (!next) return this.#end({ loggedOut: false, message: GIVE_UP });
      const seconds = Math.max(1, Math.ceil(next.delayMs / 1000));
      this.#status(`Connection lost; reconnecting in ${seconds} s (attempt ${next.attempt})…`);
      await this.#sleep(next.delayMs).done;
      if (this.#state !== "reconnecting") return;
      this.#status(`Connection lost; reconnecting now (attempt ${next.attempt})…`);
      const result = await this.#attempt(
        credentials,
        policy.attemptTimeoutMs ?? ATTEMPT_TIMEOUT_MS,
      );
      if (this.#state !== "reconnecting") {
        if (result instanceof ServerLink) result.close();
        return;
      }
      if (result instanceof ServerLink) return this.#adopt(result, credentials);
      if (result !== undefined) return this.#end({ loggedOut: false, message: result.fatal });
    }
  }

  /**
   * Sets or (null) removes the status line. Only a status line that is shown is removed, so a
   * terminal the client has already closed is left alone.
   */
  #status(text: string | null): void {
    if (text === null && !this.#statusShown) return;
    this.#statusShown = text !== null;
    this.#options.terminal.status(CONNECTION_STATUS, text === null ? null : () => text);
  }

  #adopt(link: ServerLink, credentials: Credentials): void {
    this.#link = link;
    this.#state = "up";
    this.#watch(link);
    this.#status(null);
    this.#options.terminal.print(`Reconnected to the server as ${credentials.user}.`, "notice");
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const waiter of waiters) waiter.resolve(link);
  }

  /** Waits `ms`; `cancel` (also called when the link ends) stops the timer and wakes it now. */
  #sleep(ms: number): { done: Promise<void>; cancel: () => void } {
    let cancel!: () => void;
    const done = new Promise<void>((resolve) => {
      const timer = this.#clock.setTimeout(() => cancel(), ms);
      cancel = () => {
        this.#clock.clearTimeout(timer);
        this.#sleeps.delete(cancel);
        resolve();
      };
      this.#sleeps.add(cancel);
    });
    return { done, cancel };
  }

  /**
   * One attempt: connect, hello, log in. Resolves with the logged-in link, `{ fatal }` when the
   * server refused the credentials for good, or undefined to try again later.
   */
  async #attempt(
    credentials: KeptCredentials,
    timeoutMs: number,
  ): Promise<ServerLink | { fatal: string } | undefined> {
    let abandoned = false;
    const work = (async () => {
      const conn = await this.#options.connect!();
      if (abandoned) {
        conn.close();
        return undefined;
      }
      const link = this.#trying = this.#newLink(conn);
      await link.hello();
      const asked = await link.request({ t: "user", name: credentials.user });
      if (!asked.ok) return this.#refused(credentials, asked);
      if (asked.data?.need === "new-password") {
        return { fatal: `Could not log in again as ${credentials.user}: the account is gone.` };
      }
      const { password, fallback, udpPort } = credentials;
      let reply = await link.request({ t: "pass", password, udpPort });
      if (reply.code === "bad-password" && fallback !== undefined) {
        reply = await link.request({ t: "pass", password: fallback, udpPort });
        if (reply.ok) credentials.password = fallback;
      }
      if (reply.ok) delete credentials.fallback;
      return reply.ok ? link : this.#refused(credentials, reply);
    })();
    const timeout = this.#sleep(timeoutMs);
    const result = await Promise.race([
      // A server that cannot be trusted any more (its certificate changed) is not tried again.
      work.catch((error) => error instanceof TransportError ? { fatal: error.message } : undefined),
      timeout.done.then(() => undefined),
    ]);
    abandoned = true;
    timeout.cancel();
    const link = this.#trying;
    this.#trying = undefined;
    if (!(result instanceof ServerLink)) link?.close();
    return result;
  }

  #refused(credentials: Credentials, reply: Reply): { fatal: string } | undefined {
    if (reply.code !== undefined && RETRY_CODES.has(reply.code)) return undefined;
    return { fatal: `Could not log in again as ${credentials.user}: ${reply.lines.join(" ")}` };
  }
}
