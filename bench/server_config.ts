/**
 * The configuration the benchmarks serve a ChatServer with: its files in `dir` on disk, the real
 * clock, five wrong passwords to a lockout, and the command rate limit lifted (one process's load
 * generator is every user at once, and the limit is not what is measured).
 */
import { DiskFiles, type ServerConfig } from "../lib/server/mod.ts";
import { systemClock } from "../lib/shared/clock.ts";
import type { Logger } from "../lib/shared/logger.ts";

/** The benchmarks' server configuration in `dir`, logging to `logger`, with `overrides`. */
export function benchServerConfig(
  dir: string,
  logger: Logger,
  overrides: Partial<ServerConfig> = {},
): ServerConfig {
  return {
    maxFailures: 5,
    blockDurationMs: 10_000,
    inactivityMs: 0,
    allowRegister: false,
    duplicateLogin: "deny",
    credentialsPath: `${dir}/credentials.txt`,
    userLogPath: `${dir}/userlog.txt`,
    messageLogPath: `${dir}/messagelog.txt`,
    files: new DiskFiles(),
    clock: systemClock,
    logger,
    commandBurst: 1e9,
    commandsPerSecond: 1e9,
    ...overrides,
  };
}
