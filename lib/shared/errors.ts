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
