/**
 * The client's conversation with its user: login prompts, the command loop, and events shown
 * as they arrive. Terminal I/O comes in through `Terminal`, so tests drive it with scripts.
 */
import {
  COMMAND_PROMPT,
  type CommandLine,
  parseArgs,
  readCommandLine,
} from "../shared/commands.ts";
import type { EventFrame } from "../shared/protocol.ts";
import type { Clock } from "../p2p/mod.ts";
import { ConnectionLostError, type Reply } from "./server_link.ts";
import { ReconnectingLink, type ReconnectPolicy, RequestInDoubtError } from "./reconnect.ts";
import { complete, KnownUsers } from "./completion.ts";
import type { LineKind, Terminal } from "./terminal.ts";
import type { Connection } from "../shared/transport.ts";

/** Client exit statuses. */
export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;

/** Hooks that a later layer (peer-to-peer) plugs into the command loop. */
export interface ClientExtension {
  /** Handles a command the server does not; returns false to let the server have it. */
  command?(command: CommandLine, session: ClientSession): Promise<boolean>;
  /** Sees every event first; returns true when it handled it fully. */
  event?(event: EventFrame, session: ClientSession): boolean;
  /** Called once the user is logged in. */
  loggedIn?(session: ClientSession): void;
  /** Called as the client ends. */
  finish?(): Promise<void>;
}

/** What an extension can use of the running client. */
export interface ClientSession {
  readonly user: string;
  /** The link to the server; it reconnects by itself, so requests may wait for it. */
  readonly link: ReconnectingLink;
  readonly terminal: Terminal;
  /** The users this client has seen, for completion. */
  readonly users: KnownUsers;
  /** Prints reply lines, errors styled as such. */
  show(reply: Reply): void;
}

/** Options for `runClient`. */
export interface ClientOptions {
  conn: Connection;
  /**
   * Opens a new connection to the same server, to reconnect when the connection is lost after
   * login; without it a lost connection ends the client.
   */
  connect?: () => Promise<Connection>;
  /** How long and how fast to reconnect (`forMs: 0` = never). */
  reconnect?: ReconnectPolicy;
  terminal: Terminal;
  /** The UDP port this client listens on, registered at login (and again on reconnecting). */
  udpPort: number;
  heartbeatMs?: number;
  /** Time and timers for heartbeats, liveness, pacing and reconnecting (for tests). */
  clock?: Clock;
  /** The jitter source for reconnecting (for tests). */
  random?: () => number;
  extension?: ClientExtension;
}

type Outcome = { exit: number; message?: string };

/** How each kind of event's lines are shown. */
const EVENT_LINES: Record<EventFrame["kind"], LineKind> = {
  presence: "presence",
  message: "message",
  broadcast: "broadcast",
  notice: "notice",
  logout: "notice",
  ask: "notice",
  ticket: "notice",
  "private-stop": "notice",
  "transfer-revoked": "notice",
};

/** Runs one client session to the end and returns the exit status. */
export async function runClient(options: ClientOptions): Promise<number> {
  const { terminal } = options;
  let sessionRef: ClientSession | undefined;
  const users = new KnownUsers();
  const link = new ReconnectingLink({
    conn: options.conn,
    ...(options.connect ? { connect: options.connect } : {}),
    ...(options.reconnect ? { reconnect: options.reconnect } : {}),
    ...(options.clock ? { clock: options.clock } : {}),
    ...(options.random ? { random: options.random } : {}),
    terminal,
    heartbeatMs: options.heartbeatMs ?? 15_000,
    onEvent(event) {
      users.seeEvent(event);
      if (sessionRef && options.extension?.event?.(event, sessionRef)) return;
      for (const line of event.lines) terminal.print(line, EVENT_LINES[event.kind]);
    },
  });
  // The end for good: logged out by the server, or lost and not (or no longer) reconnecting.
  const ended = link.ended.then((end): Outcome =>
    // A logout because the account was locked ends like a lockout at login: status 1.
    end.loggedOut
      ? { exit: end.blocked ? EXIT_FAILURE : EXIT_OK }
      : { exit: EXIT_FAILURE, message: end.message }
  );
  // Whatever the user is doing, the end of the connection ends the client; it is reported
  // only where it wins that race, so a normal logout never reads as a lost connection.
  const orEnd = async <T>(work: Promise<T>): Promise<T | Outcome> => {
    const result = await Promise.race([work, ended]);
    // A message may span lines (a changed server certificate is explained at length).
    if (isOutcome(result) && result.message) {
      for (const line of result.message.split("\n")) terminal.print(line, "error");
    }
    return result;
  };
  const isOutcome = (value: unknown): value is Outcome =>
    typeof value === "object" && value !== null && "exit" in value;

  try {
    const hello = await orEnd(link.hello());
    if (isOutcome(hello)) return hello.exit;
    const login = await orEnd(logIn(link, terminal, options.udpPort));
    if (isOutcome(login)) return login.exit;
    if (typeof login === "number") return login;
    // Kept in memory only, to log in again after a lost connection.
    link.loggedIn({ user: login.user, password: login.password, udpPort: options.udpPort });
    const session: ClientSession = {
      user: login.user,
      link,
      terminal,
      users,
      show: (reply) => showReply(terminal, reply),
    };
    sessionRef = session;
    users.self = login.user;
    terminal.setCompleter?.((line, cursor) => complete(line, cursor, users));
    options.extension?.loggedIn?.(session);
    while (true) {
      const line = await orEnd(terminal.readLine(COMMAND_PROMPT));
      if (isOutcome(line)) return line.exit;
      const command = line === null ? "OUT" : line.trim();
      if (command === "") continue;
      let result: Awaited<ReturnType<typeof runCommand>> | Outcome;
      try {
        result = await orEnd(runCommand(command, session, options.extension));
      } catch (error) {
        // Lost in flight: say so rather than repeat it; the link is reconnecting meanwhile.
        if (!(error instanceof RequestInDoubtError)) throw error;
        terminal.print(error.message, "error");
        continue;
      }
      if (isOutcome(result)) return result.exit;
      if (result === "bye") return EXIT_OK;
    }
  } catch (error) {
    if (!(error instanceof ConnectionLostError)) throw error;
    const outcome = await ended;
    if (outcome.message) terminal.print(outcome.message, "error");
    return outcome.exit;
  } finally {
    terminal.close();
    await options.extension?.finish?.();
    link.close();
  }
}

async function logIn(
  link: ReconnectingLink,
  terminal: Terminal,
  udpPort: number,
): Promise<{ user: string; password: string } | number> {
  while (true) {
    const name = await terminal.readLine("Username: ");
    if (name === null) return EXIT_FAILURE;
    if (name.trim() === "") continue;
    const asked = await link.request({ t: "user", name: name.trim() });
    showReply(terminal, asked, !asked.ok);
    if (!asked.ok) continue;
    while (true) {
      const password = await terminal.readSecret("Password: ");
      if (password === null) return EXIT_FAILURE;
      const reply = await link.request({ t: "pass", password, udpPort });
      showReply(terminal, reply);
      if (reply.ok) return { user: reply.data?.user ?? name.trim(), password };
      if (reply.code === "locked" || reply.code === "blocked") return EXIT_FAILURE;
      // A wrong password, or one the server could not check just now: ask for it again.
      if (["bad-password", "usage", "busy", "throttled"].includes(reply.code ?? "")) continue;
      // already-online, a lost registration race, or the server's store away just now
      // (unavailable): ask for the username again.
      break;
    }
  }
}

function showReply(terminal: Terminal, reply: Reply, quietIfEmpty = false): void {
  if (quietIfEmpty && reply.lines.length === 0) return;
  for (const line of reply.lines) terminal.print(line, reply.ok ? "reply" : "error");
}

async function runCommand(
  line: string,
  session: ClientSession,
  extension: ClientExtension | undefined,
): Promise<"bye" | "more"> {
  const command = readCommandLine(line);
  if (command.spec?.name === "passwd") {
    await changePassword(session);
    return "more";
  }
  if (await extension?.command?.(command, session)) return "more";
  const reply = await session.link.request({ t: "cmd", line });
  session.show(reply);
  session.users.seeReply(command.spec?.name, reply.lines);
  if (command.spec?.name === "message" && reply.ok) echoDirectMessage(session, command);
  return command.spec?.name === "OUT" && reply.ok ? "bye" : "more";
}

/** On a terminal, shows one's own direct message so the conversation reads in order. */
function echoDirectMessage(session: ClientSession, command: CommandLine): void {
  if (!session.terminal.interactive || !command.spec) return;
  const { user, text } = parseArgs(command.spec, command.rest);
  session.terminal.print(`→ ${user}: ${text}`, "own");
}

async function changePassword(session: ClientSession): Promise<void> {
  const { terminal, link } = session;
  const old = await terminal.readSecret("Old password: ");
  if (old === null) return;
  const fresh = await terminal.readSecret("New password: ");
  if (fresh === null) return;
  const again = await terminal.readSecret("New password again: ");
  if (again === null) return;
  if (fresh !== again) {
    terminal.print("The new passwords do not match. Password not changed.", "error");
    return;
  }
  session.show(await link.request({ t: "passwd", old, new: fresh }));
}
