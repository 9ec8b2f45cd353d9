/**
 * A raw protocol client for end-to-end tests of the built chat-server over plain TCP on 127.0.0.1,
 * with the accounts it logs in as and the server arguments it can reach: JSON lines through
 * ServerLink, paced as a real client is, with every event it receives kept for the test.
 */
import assert from "node:assert/strict";
import { type Reply, ServerLink } from "../lib/client/server_link.ts";
import type { EventFrame } from "../lib/shared/protocol.ts";
import { tcpConnection } from "../lib/shared/transport.ts";
import { PASSWORDS as SAMPLE_PASSWORDS } from "./server_fixture.ts";

/** The sample accounts and four more who stay offline while a crash test's clients work. */
export const PASSWORDS: Record<string, string> = {
  ...SAMPLE_PASSWORDS,
  luke: "skywalker",
  leia: "organa",
  lando: "calrissian",
  chewie: "wookiee",
};
/** credentials.txt holding every account of {@linkcode PASSWORDS}. */
export const CREDENTIALS = Object.entries(PASSWORDS).map(([user, pw]) => `${user} ${pw}\n`)
  .join("");
/** Every server here listens on 127.0.0.1 only and speaks plain TCP. */
export const SERVER_ARGS = ["3", "--no-tls", "--host", "127.0.0.1", "--quiet"];

/** A raw protocol client over TCP: JSON lines through ServerLink (paced, as a real client is). */
export class RawClient implements Disposable {
  readonly events: EventFrame[] = [];
  readonly link: ServerLink;

  private constructor(conn: Deno.TcpConn) {
    this.link = new ServerLink(tcpConnection(conn), {
      onEvent: (event) => this.events.push(event),
    });
  }

  /** Connects to a server on 127.0.0.1. */
  static async connect(port: number): Promise<RawClient> {
    return new RawClient(await Deno.connect({ hostname: "127.0.0.1", port }));
  }

  /** Says hello and sends `user`; the reply says whether a password or a new one is needed. */
  async user(name: string): Promise<Reply> {
    await this.link.hello();
    return await this.link.request({ t: "user", name });
  }

  /** Sends `pass` (after {@linkcode user}). */
  pass(password: string): Promise<Reply> {
    return this.link.request({ t: "pass", password, udpPort: 0 });
  }

  /** Logs in; fails the test unless it works. */
  async login(name: string, password = PASSWORDS[name]!): Promise<void> {
    const asked = await this.user(name);
    assert.deepEqual(asked.data, { need: "password" }, `${name}: ${asked.lines.join(" ")}`);
    const welcome = await this.pass(password);
    assert.ok(welcome.ok && welcome.lines.includes("Welcome to TOOM!"), welcome.lines.join(" "));
  }

  /** Sends a command line and returns its reply. */
  cmd(line: string): Promise<Reply> {
    return this.link.request({ t: "cmd", line });
  }

  /** Logs out (`OUT`) and waits until the server has closed the connection. */
  async logOut(): Promise<void> {
    const bye = await this.cmd("OUT");
    assert.ok(bye.ok, bye.lines.join(" "));
    await this.link.closed;
  }

  /** Closes the connection; idempotent. */
  close(): void {
    this.link.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/** Connects a client and logs it in. */
export async function loggedIn(port: number, name: string): Promise<RawClient> {
  const client = await RawClient.connect(port);
  try {
    await client.login(name);
    return client;
  } catch (error) {
    client.close();
    throw error;
  }
}
