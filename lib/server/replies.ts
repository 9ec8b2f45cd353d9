/**
 * What server logic gives back: an `Answer` for whoever sent the frame, and events for other users
 * through a `Notify`. Server logic never writes to another user's connection; the server core
 * decides when events travel (after the reply that caused them, or at once for what happens
 * outside any command).
 */
import type { ReplyCode, ReplyData, ServerEvent } from "../shared/protocol.ts";

/** The reply to one request, before it is framed. */
export interface Answer {
  ok: boolean;
  lines: string[];
  code?: ReplyCode;
  data?: ReplyData;
}

/** A failed answer with its code. */
export function refusal(code: ReplyCode, line: string): Answer {
  return { ok: false, lines: [line], code };
}

/** Asks for an event to reach an online user (nothing happens if they are not online). */
export type Notify = (to: string, event: ServerEvent) => void;

/** One event for one user. */
export interface Delivery {
  to: string;
  event: ServerEvent;
}

/** Collects events while a frame is handled; the server delivers them after its reply. */
export class Outbox {
  readonly #deliveries: Delivery[] = [];

  /** The collecting `Notify`. */
  readonly notify: Notify = (to, event) => {
    this.#deliveries.push({ to, event });
  };

  /** Takes what was collected, oldest first. */
  take(): Delivery[] {
    return this.#deliveries.splice(0);
  }
}
