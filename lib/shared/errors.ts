/**
 * Errors a command can end with. Handlers throw these; only the dispatcher turns them into
 * replies.
 */

/** The command was recognised but its arguments do not fit its syntax. */
export class UsageError extends Error {
  constructor(readonly usage: string, detail?: string) {
    super(detail ? `${detail}. Usage: ${usage}` : `Invalid usage. Usage: ${usage}`);
    this.name = "UsageError";
  }
}

/** The command was well-formed but cannot be carried out; the message says why. */
export class CommandError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "CommandError";
  }
}

/** What a user is told when the store cannot be reached (cluster mode: the shared database). */
export const UNAVAILABLE = "Service unavailable, try again";

/**
 * The command could not be carried out because the store it needs cannot be reached just now;
 * nothing was changed, and the same command may well work a moment later (reply code
 * `unavailable`).
 */
export class UnavailableError extends CommandError {
  constructor(message = UNAVAILABLE) {
    super(message);
    this.name = "UnavailableError";
  }
}
