/** What a command handler is given, and what it may ask to have delivered. */
import type { Args } from "../../shared/commands.ts";
import type { EventKind } from "../../shared/protocol.ts";
import type { ChatServer } from "../chat_server.ts";
import type { Session } from "../session.ts";

/** An event for another user, delivered by the dispatcher after the reply. */
export interface Delivery {
  to: string;
  kind: EventKind;
  lines: string[];
  data?: Record<string, unknown>;
}

/** One command being handled. */
export interface CommandContext {
  readonly server: ChatServer;
  readonly session: Session;
  readonly user: string;
  /** The time the command arrived. */
  readonly now: number;
  /** Structured data to attach to the reply (for programs, beside the lines people read). */
  readonly data: Record<string, unknown>;
  /** Queues an event for an online user; the dispatcher delivers it after the reply. */
  notify(to: string, kind: EventKind, lines: string[], data?: Record<string, unknown>): void;
}

/** A handler returns the reply lines; it throws UsageError or CommandError to fail. */
export type Handler = (context: CommandContext, args: Args) => Promise<string[]> | string[];
