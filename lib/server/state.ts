/**
 * The server's configuration, and the state built from it: the stores, the roster, the broker
 * and the login state machine, wired to each other once.
 */
import type { Clock } from "../shared/clock.ts";
import type { Logger } from "../shared/logger.ts";
import { AccountStore } from "./accounts.ts";
import { Broker } from "./broker.ts";
import { DEFAULT_HASH_COST, type HashCost } from "./credentials.ts";
import type { TextFiles } from "./files.ts";
import { LoginGuard } from "./lockout.ts";
import { Login } from "./login.ts";
import { Mailbox } from "./mailbox.ts";
import { MessageBoard } from "./message_board.ts";
import { Relations } from "./relations.ts";
import { Roster } from "./roster.ts";
import { UserLog } from "./user_log.ts";

/** What a server is configured with. Durations are milliseconds. */
export interface ServerConfig {
  maxFailures: number;
  blockDurationMs: number;
  /** Inactivity logout; 0 turns it off. */
  inactivityMs: number;
  allowRegister: boolean;
  duplicateLogin: "deny" | "replace";
  credentialsPath: string;
  userLogPath: string;
  messageLogPath: string;
  files: TextFiles;
  clock: Clock;
  logger: Logger;
  hashCost?: HashCost;
  /** A session silent this long is lost (heartbeats count). */
  heartbeatTimeoutMs?: number;
  sendQueueBytes?: number;
  /** Connections beyond this are refused. */
  maxConnections?: number;
  /** Connections not yet logged in beyond this push out the oldest such connection. */
  maxPendingLogins?: number;
  /** Command rate limit: a burst, refilled at `perSecond`. */
  commandBurst?: number;
  commandsPerSecond?: number;
  /** Offline messages kept per recipient. */
  mailboxLimit?: number;
}

/** The server state that commands read and change. */
export interface ServerState {
  readonly board: MessageBoard;
  readonly userLog: UserLog;
  readonly relations: Relations;
  readonly mailbox: Mailbox;
  readonly roster: Roster;
  readonly broker: Broker;
  readonly logger: Logger;
}

/** Builds the state and the login state machine for a server with `config`. */
export function buildState(config: ServerConfig): { state: ServerState; login: Login } {
  const { files, clock, logger } = config;
  const writeFailed = (path: string) => (error: unknown) =>
    logger.warn(`Could not write ${path} (it is rewritten at the next change): ${error}`);
  const accounts = new AccountStore(
    files,
    config.credentialsPath,
    logger,
    config.hashCost ?? DEFAULT_HASH_COST,
  );
  const userLog = new UserLog(files, config.userLogPath, {
    onWriteError: writeFailed(config.userLogPath),
  });
  const relations = new Relations();
  const mailbox = new Mailbox(config.mailboxLimit ?? 100);
  const roster = new Roster({
    accounts,
    userLog,
    relations,
    mailbox,
    clock,
    logger,
    duplicateLogin: config.duplicateLogin,
    onLeave: (user, notify) => broker.userLeft(user, notify),
  });
  const broker = new Broker(roster, relations, logger);
  const board = new MessageBoard(files, config.messageLogPath, clock, {
    onWriteError: writeFailed(config.messageLogPath),
  });
  const guard = new LoginGuard(config.maxFailures, config.blockDurationMs, clock);
  return {
    state: { board, userLog, relations, mailbox, roster, broker, logger },
    login: new Login(accounts, guard, logger, { allowRegister: config.allowRegister }),
  };
}
