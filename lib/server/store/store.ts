/**
 * The Store: every piece of server state that outlives a connection, behind one seam. Handlers and
 * the login module reach accounts, lockouts, the board, the active users, offline messages,
 * blocks and last-seen times only through it. Each section keeps its rules and its data in memory
 * and writes its changes down through the storage's journal: nowhere (memoryStorage, for tests and
 * for a cluster node, whose changes travel in the cluster's log), toom.db (openSqliteStorage, the
 * server's default) or PostgreSQL (openPostgresStorage).
 */
import type { Clock } from "../../shared/clock.ts";
import type { Logger } from "../../shared/logger.ts";
import { type AccountLedger, AccountStore } from "../accounts.ts";
import { activeUsersOf, OnlineList } from "../cluster/online_list.ts";
import { DEFAULT_HASH_COST, type HashCost } from "../credentials.ts";
import type { TextFiles } from "../files.ts";
import type { HashPool } from "../hash_pool.ts";
import { LastSeen } from "../last_seen.ts";
import { LoginGuard } from "../lockout.ts";
import { DEFAULT_PER_SENDER, Mailbox } from "../mailbox.ts";
import { MessageBoard } from "../message_board.ts";
import { Relations } from "../relations.ts";
import { UserLog } from "../user_log.ts";
import type { Storage } from "./journal.ts";

/** The server's lasting state. */
export interface Store {
  /** Accounts (credentials.txt, with changes written down first). */
  readonly accounts: AccountStore;
  /** Failed logins and lockouts per username. */
  readonly guard: LoginGuard;
  /** The board and messagelog.txt. */
  readonly board: MessageBoard;
  /** The active users and userlog.txt. */
  readonly userLog: UserLog;
  /** Offline messages. */
  readonly mailbox: Mailbox;
  /** Blocks. */
  readonly relations: Relations;
  /** When users were last online. */
  readonly lastSeen: LastSeen;
  /**
   * Who is online on every node of a cluster (lib/server/cluster/online_list.ts), changed only by
   * the log's proposals; empty on a single server, whose sessions the Roster and userLog keep.
   */
  readonly online: OnlineList;
  /**
   * Brings the files in line with the store as the server starts: userlog.txt empty (a cluster
   * node's: the cluster's online list it started from, as every other node has it),
   * messagelog.txt empty or (kept board) the board, credentials.txt with the account changes a
   * killed run wrote down but had not written to it (in cluster mode: the file's accounts the
   * cluster lacks proposed, and the file rewritten to the cluster's).
   */
  start(): Promise<void>;
  /** Writes what is pending and lets go of the storage. */
  close(): Promise<void>;
}

/** What the store's sections are configured with. */
export interface StoreConfig {
  files: TextFiles;
  clock: Clock;
  logger: Logger;
  credentialsPath: string;
  userLogPath: string;
  messageLogPath: string;
  maxFailures: number;
  blockDurationMs: number;
  hashCost?: HashCost;
  pool: HashPool;
  /** Offline messages kept per recipient, and how many of them one sender may hold. */
  mailboxLimit?: number;
  mailboxPerSender?: number;
  /** The board survives restarts (chat-server --keep-board). */
  keepBoard?: boolean;
  /**
   * Cluster mode: where account changes are decided (lib/server/cluster/accounts.ts); the
   * accounts start as the contents' `ledger`, and credentials.txt becomes their mirror.
   */
  accountLedger?: AccountLedger;
}

/** Builds the store's sections over `storage`, starting from what it holds. */
export function buildStore(storage: Storage, config: StoreConfig): Store {
  const { files, clock, logger } = config;
  const journal = storage;
  const { contents } = storage;
  const writeFailed = (path: string) => (error: unknown) =>
    logger.warn(`Could not write ${path} (it is rewritten at the next change): ${error}`);
  const accounts = new AccountStore(files, config.credentialsPath, {
    logger,
    hashCost: config.hashCost ?? DEFAULT_HASH_COST,
    pool: config.pool,
    journal,
    ...(config.accountLedger
      ? { cluster: { ledger: config.accountLedger, replicated: contents.ledger ?? [] } }
      : {}),
  });
  const userLog = new UserLog(files, config.userLogPath, {
    onWriteError: writeFailed(config.userLogPath),
  });
  // Empty but on a cluster node (a single server's sessions end with its run).
  const online = new OnlineList(contents.online);
  const board = new MessageBoard(files, config.messageLogPath, clock, {
    onWriteError: writeFailed(config.messageLogPath),
    keep: config.keepBoard ?? false,
    journal,
    posts: contents.board,
    ...(contents.next ? { nextId: contents.next.post } : {}),
  });
  return {
    accounts,
    guard: new LoginGuard(config.maxFailures, config.blockDurationMs, clock, {
      journal,
      lockouts: contents.lockouts,
    }),
    board,
    userLog,
    mailbox: new Mailbox(config.mailboxLimit ?? 100, {
      perSender: config.mailboxPerSender ?? DEFAULT_PER_SENDER,
      journal,
      waiting: contents.mail,
      ...(contents.next ? { nextId: contents.next.mail } : {}),
      clock,
    }),
    relations: new Relations({ journal, blocks: contents.blocks }),
    lastSeen: new LastSeen({ journal, seen: contents.seen }),
    online,
    async start() {
      // The online list as it is now; what the log decides later rewrites it (local_effects.ts).
      await Promise.all([board.reset(), userLog.replace(activeUsersOf(online))]);
      if (config.accountLedger) {
        try {
          const added = await accounts.join();
          if (added.length > 0) {
            logger.info(
              `The cluster took ${added.length} account(s) from ${config.credentialsPath}`,
            );
          }
        } catch (error) {
          // The node serves the cluster's accounts; its file's others wait for its next start.
          logger.warn(
            `Could not give ${config.credentialsPath}'s accounts to the cluster: ${String(error)}`,
          );
        }
        return;
      }
      try {
        const recovered = await accounts.recover(contents.accounts);
        if (recovered > 0) {
          logger.info(`Wrote ${recovered} account change(s) to ${config.credentialsPath}`);
        }
      } catch (error) {
        logger.warn(
          `Could not write ${config.credentialsPath}: ${String(error)} (the account changes ` +
            `of the last run are kept and written at the next start)`,
        );
      }
    },
    close: () => storage.close(),
  };
}
