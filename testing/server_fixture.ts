/**
 * Shared test fixtures: a server on memory files and a fake clock, and scripted clients that
 * speak the real protocol over in-memory or TCP connections.
 */
import { type Reply, ServerLink } from "../lib/client/server_link.ts";
import type { EventFrame } from "../lib/shared/protocol.ts";
import { FakeClock } from "../lib/shared/clock.ts";
import { MemoryFiles } from "../lib/server/files.ts";
import { MemoryLogger } from "../lib/shared/logger.ts";
import { ChatServer, type ServerConfig } from "../lib/server/mod.ts";
import { type Connection, memoryPair } from "../lib/shared/transport.ts";

/** The sample accounts most tests use. */
export const CREDENTIALS = "yoda jedi\nvader sithlord\nhans falcon\nobiwan hellothere\n";

/**
 * A server wired to memory files and a fake clock. `await using test = await startServer();`
 * closes it (and every client it connected) when the scope ends, even if the test failed.
 */
export interface TestServer extends AsyncDisposable {
  server: ChatServer;
  files: MemoryFiles;
  clock: FakeClock;
  logger: MemoryLogger;
  /** The current text of a file the server keeps ("" if absent). */
  file(name: "userlog.txt" | "messagelog.txt" | "credentials.txt"): string;
  /** Connects a new in-memory client. */
  connect(address?: { hostname: string; port: number }): TestClient;
  /** Closes every client connected here, then the server; idempotent. */
  close(): Promise<void>;
}

/** A server config on memory files, a fake clock and a cheap hash; `overrides` win. */
export function testConfig(overrides: Partial<ServerConfig> = {}): ServerConfig {
  const files = new MemoryFiles();
  files.contents.set("credentials.txt", CREDENTIALS);
  return {
    maxFailures: 3,
    blockDurationMs: 10_000,
    inactivityMs: 0,
    allowRegister: false,
    duplicateLogin: "deny",
    credentialsPath: "credentials.txt",
    userLogPath: "userlog.txt",
    messageLogPath: "messagelog.txt",
    files,
    clock: new FakeClock(),
    logger: new MemoryLogger(),
    hashCost: { N: 1024, r: 8, p: 1 },
    ...overrides,
  };
}

/** An address for an in-memory connection, as "ip:port" (nothing is bound). */
export function memoryAddress(text: string): { hostname: string; port: number } {
  const colon = text.lastIndexOf(":");
  return { hostname: text.slice(0, colon), port: Number(text.slice(colon + 1)) };
}

/** Builds and starts a server; `overrides` replace any config field. */
export async function startServer(
  overrides: Partial<ServerConfig> & { files?: MemoryFiles } = {},
): Promise<TestServer> {
  const files = overrides.files ?? new MemoryFiles();
  if (!overrides.files) files.contents.set("credentials.txt", CREDENTIALS);
  const clock = new FakeClock();
  const logger = new MemoryLogger();
  const server = new ChatServer(testConfig({ clock, logger, ...overrides, files }));
  await server.start();
  const clients: TestClient[] = [];
  let port = 50000;
  let closing: Promise<void> | undefined;
  const close = () =>
    closing ??= (async () => {
      for (const client of clients) client.close();
      await server.close();
    })();
  return {
    server,
    files,
    clock,
    logger,
    file: (name) => files.contents.get(name) ?? "",
    connect(address = { hostname: "127.0.0.1", port: port++ }) {
      const [clientEnd, serverEnd] = memoryPair(address, memoryAddress("127.0.0.1:120"));
      void server.handle(serverEnd);
      const client = new TestClient(clientEnd);
      clients.push(client);
      return client;
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}

/**
 * A client driven by a test: requests and the events it has seen. Clients from
 * `TestServer.connect()` close with their server; others can be `using`-declared.
 */
export class TestClient implements Disposable {
  readonly link: ServerLink;
  readonly events: EventFrame[] = [];
  #waiters: Array<{ match: (e: EventFrame) => boolean; resolve: (e: EventFrame) => void }> = [];

  constructor(conn: Connection) {
    this.link = new ServerLink(conn, {
      heartbeatMs: 3_600_000,
      deadAfterMs: 7_200_000,
      // A protocol driver: tests of the server's rate limit must be able to overrun it.
      pace: false,
      onEvent: (event) => {
        this.events.push(event);
        this.#waiters = this.#waiters.filter((waiter) => {
          if (!waiter.match(event)) return true;
          waiter.resolve(event);
          return false;
        });
      },
    });
  }

  /** Says hello. */
  async hello(): Promise<void> {
    await this.link.hello();
  }

  /** Logs in; resolves with the final reply (ok or not). */
  async login(user: string, password: string, udpPort = 8000): Promise<Reply> {
    await this.hello();
    const asked = await this.link.request({ t: "user", name: user });
    if (!asked.ok) return asked;
    return this.link.request({ t: "pass", password, udpPort });
  }

  /** Sends a command line and returns its reply. */
  cmd(line: string): Promise<Reply> {
    return this.link.request({ t: "cmd", line });
  }

  /** Every line of every event seen so far. */
  get eventLines(): string[] {
    return this.events.flatMap((event) => event.lines);
  }

  /** Resolves with the first event (seen already or still to come) that contains `text`. */
  waitFor(text: string): Promise<EventFrame> {
    return this.waitForEvent((event) => event.lines.some((line) => line.includes(text)));
  }

  /** Resolves with the first event (seen already or still to come) that `match` accepts. */
  waitForEvent(match: (event: EventFrame) => boolean): Promise<EventFrame> {
    const seen = this.events.find(match);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve) => this.#waiters.push({ match, resolve }));
  }

  /** Closes the connection; idempotent. */
  close(): void {
    this.link.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/** Logs a client in and fails the test if that does not work. */
export async function loggedIn(
  test: TestServer,
  user: string,
  password: string,
  udpPort = 8000,
): Promise<TestClient> {
  const client = test.connect();
  const reply = await client.login(user, password, udpPort);
  if (!reply.ok) throw new Error(`Login of ${user} failed: ${reply.lines.join(" ")}`);
  return client;
}

/** Lets queued deliveries and file writes settle. */
export async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((resolve) => setTimeout(resolve, 0));
}

/** The passwords of the sample accounts. */
export const PASSWORDS: Record<string, string> = {
  yoda: "jedi",
  vader: "sithlord",
  hans: "falcon",
  obiwan: "hellothere",
};
