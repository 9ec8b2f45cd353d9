/**
 * The server's configuration, and the state built from it: the store, the roster, the broker
 * and the login state machine, wired to each other once.
 */
import type { Clock } from "../shared/clock.ts";
import type { Logger } from "../shared/logger.ts";
import { Broker } from "./broker.ts";
import type { Cluster } from "./cluster/cluster.ts";
import { accountLedger } from "./cluster/accounts.ts";
import { answerAcross } from "./cluster/brokering.ts";
import { actOnDecided } from "./cluster/local_effects.ts";
import type { HashCost } from "./credentials.ts";
import type { TextFiles } from "./files.ts";
import { HashPool } from "./hash_pool.ts";
import { Login } from "./login.ts";
import type { Notify } from "./replies.ts";
import { Roster } from "./roster.ts";
import { memoryStorage, type Storage } from "./store/journal.ts";
import { buildStore, type Store } from "./store/store.ts";
import { AddressThrottle } from "./throttle.ts";

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
  /**
   * How long a stop waits for sessions to send what they have queued (the shutdown notice)
   * before closing them anyway; default 1 s.
   */
  closeGraceMs?: number;
  /**
   * Connections beyond this are refused, once the oldest not logged in has made way (default
   * 4096; chat-server derives it from the descriptors it can open, see limits.ts).
   */
  maxConnections?: number;
  /** Connections not yet logged in beyond this push out the oldest such connection. */
  maxPendingLogins?: number;
  /**
   * Per source address (IPv4, or IPv6 /64): connections not yet logged in; a new one beyond it
   * pushes out that address's oldest. 0 = no limit. Default 32.
   */
  maxPendingPerIp?: number;
  /** Per source address: failed logins and wrong `passwd` old passwords per minute (default 30). */
  maxFailuresPerIp?: number;
  /** Per source address: accounts registered per hour; 0 = no limit. Default 10. */
  maxRegistrationsPerIp?: number;
  /** Password hashes (scrypt checks and hashes) run at once. Default 1. */
  hashConcurrency?: number;
  /** Password hashes waiting for a turn; beyond it logins are refused as busy. Default 32. */
  hashQueue?: number;
  /** Command rate limit: a burst, refilled at `perSecond`. */
  commandBurst?: number;
  commandsPerSecond?: number;
  /** Offline messages kept per recipient. */
  mailboxLimit?: number;
  /** Of those, how many one sender may hold (default 20). */
  mailboxPerSender?: number;
  /** Where lasting state is written down (default: memory only, nothing survives a restart). */
  storage?: Storage;
  /** The board survives restarts (needs a storage that keeps things). */
  keepBoard?: boolean;
  /**
   * Cluster mode (lib/server/cluster/cluster.ts): the store starts from the cluster's storage
   * (`storage` is not used), keeps its board, and the commands wired to it propose through it.
   */
  cluster?: Cluster;
}

/** Failed logins (and wrong `passwd` old passwords) per minute per source address by default. */
export const DEFAULT_FAILURES_PER_IP = 30;
/** Accounts registered per hour per source address by default. */
export const DEFAULT_REGISTRATIONS_PER_IP = 10;
/** Connections not yet logged in per source address by default. */
export const DEFAULT_PENDING_PER_IP = 32;

/** The server state that commands read and change. */
export interface ServerState {
  /** Everything that outlives a connection. */
  readonly store: Store;
  readonly roster: Roster;
  readonly broker: Broker;
  readonly logger: Logger;
  /** The cluster this server is a node of, if any. */
  readonly cluster: Cluster | undefined;
}

/**
 * Builds the state and the login state machine for a server with `config`. In cluster mode,
 * `deliver` sends an event to a user whose session this server holds, at once (what the cluster
 * decided that this node delivers: presence notices, messages, broadcasts).
 */
export function buildState(
  config: ServerConfig,
  deliver: Notify = () => {},
): { state: ServerState; login: Login } {
  const { clock, logger } = config;
  const pool = new HashPool({
    ...(config.hashConcurrency !== undefined ? { concurrency: config.hashConcurrency } : {}),
    ...(config.hashQueue !== undefined ? { queue: config.hashQueue } : {}),
  });
  const { cluster } = config;
  const store = cluster
    ? buildStore(cluster.storage, {
      ...config,
      pool,
      keepBoard: true,
      accountLedger: accountLedger(cluster),
    })
    : buildStore(config.storage ?? memoryStorage(), { ...config, pool });
  cluster?.follow(store, (proposal, outcome, proposer) =>
    actOnDecided(
      {
        node: cluster.node,
        store,
        deliver,
        replaced: (user, session) => roster.replacedInCluster(user, session, deliver),
        lost: () => roster.lostInCluster(deliver),
        broker,
      },
      proposal,
      outcome,
      proposer,
    ));
  const roster = new Roster({
    cluster,
    store,
    clock,
    logger,
    duplicateLogin: config.duplicateLogin,
    onLeave: (user, notify) => broker.userLeft(user, notify),
  });
  const broker = new Broker(roster, store.relations, logger, {
    clock,
    ...(cluster ? { answerAcross: (ask, yes) => answerAcross(cluster, ask, yes) } : {}),
  });
  return {
    state: { store, roster, broker, logger, cluster },
    login: new Login(store, logger, {
      allowRegister: config.allowRegister,
      ...(cluster ? { cluster } : {}),
      failures: new AddressThrottle({
        limit: config.maxFailuresPerIp ?? DEFAULT_FAILURES_PER_IP,
        windowMs: 60_000,
      }, clock),
      registrations: new AddressThrottle({
        limit: config.maxRegistrationsPerIp ?? DEFAULT_REGISTRATIONS_PER_IP,
        windowMs: 3_600_000,
      }, clock),
    }),
  };
}
