/** What a command handler is given, and what it gives back. */
import type { Args } from "../../shared/commands.ts";
import type { Answer, Notify } from "../replies.ts";
import type { Session } from "../session.ts";
import type { ServerState } from "../state.ts";

/** One command being handled. */
export interface CommandContext {
  readonly state: ServerState;
  readonly session: Session;
  readonly user: string;
  /** The time the command arrived. */
  readonly now: number;
  /** Queues an event for an online user; the dispatcher delivers it after the reply. */
  readonly notify: Notify;
  /** The client's id for what the command sends (`ref` of the `cmd` frame), if it gave one. */
  readonly ref?: string;
  /**
   * Holds the reply (and the events) back until `change` is written down; if it rejects, the
   * reply is its error instead. The change must already be made in memory when it is handed over:
   * the session's next command does not wait for it (replies keep their order).
   */
  readonly afterCommit: (change: Promise<unknown>) => void;
}

/** A successful command's reply: its lines, or lines with data for programs. */
export type HandlerResult = string[] | Pick<Answer, "lines" | "data">;

/** A handler returns its reply; it throws UsageError or CommandError to fail. */
export type Handler = (
  context: CommandContext,
  args: Args,
) => Promise<HandlerResult> | HandlerResult;
