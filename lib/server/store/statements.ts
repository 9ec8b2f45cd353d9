/**
 * What each change becomes in a database: named statements with their parameters. The names are
 * the same for every database; each storage holds the SQL text of every name in its own dialect
 * (sqlite.ts, postgres.ts), so the mapping from a change to its writes is written once.
 */
import type { Change } from "./journal.ts";

/** A value a statement may be given. */
export type SqlValue = string | number | null;

/** The statements changes become; every storage has the SQL text of each. */
export type StatementName =
  | "block"
  | "unblock"
  | "mail"
  | "delivered"
  | "seen"
  | "lockout"
  | "unlock"
  | "account"
  | "accountDone"
  | "post"
  | "unpost"
  | "clearBoard"
  | "online"
  | "offline"
  /** The server was alive at the time given (for the users a killed run had online). */
  | "alive";

/** One statement to run: its name and its parameters, in the order its SQL text takes them. */
export type Statement = [name: StatementName, params: SqlValue[]];

/** The statements that record `change`. */
export function statementsOf(change: Change): Statement[] {
  switch (change.t) {
    case "block":
      return [["block", [change.by, change.other]]];
    case "unblock":
      return [["unblock", [change.by, change.other]]];
    case "mail": {
      const { id, to, from, line, ref, time } = change.mail;
      return [["mail", [id, to, from, line, ref, time]]];
    }
    case "delivered":
      return change.ids.map((id) => ["delivered", [id]]);
    case "seen":
      return [["seen", [change.user, change.time]]];
    case "lockout":
      return change.failures === 0 && change.until === 0
        ? [["unlock", [change.user]]]
        : [["lockout", [change.user, change.failures, change.until]]];
    case "account":
      return [["account", [change.user, change.secret]]];
    case "account-done":
      return [["accountDone", [change.user]]];
    case "post": {
      const { id, author, text, time, edited } = change.post;
      return [["post", [id, author, text, time, edited ? 1 : 0]]];
    }
    case "unpost":
      return [["unpost", [change.id]]];
    case "clear-board":
      return [["clearBoard", []]];
    case "online":
      return [["online", [change.user, change.time]]];
    case "offline":
      return [["offline", [change.user]]];
  }
}

/** The statement that notes the server was alive at `time` (stored as text, in `meta`). */
export function aliveAt(time: number): Statement {
  return ["alive", [String(time)]];
}
