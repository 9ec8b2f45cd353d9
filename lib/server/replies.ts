/**
 * What server logic gives back: an `Answer` for whoever sent the frame, and events for other users
 * through a `Notify`. Server logic never writes to another user's connection; the server core
 * decides when events travel (after the reply that caused them, or at once for what happens
 * outside any command).
 */
import { CommandError, UnavailableError, UsageError } from "../shared/errors.ts";
import { encodeFrameText } from "../shared/framing.ts";
import type { Logger } from "../shared/logger.ts";
import {
  encodeFrame,
  type ReplyCode,
  type ReplyData,
  type ServerEvent,
} from "../shared/protocol.ts";
import type { Session } from "./session.ts";

/** Characters of reply lines per frame (a frame holds up to 64 KiB of UTF-8). */
const REPLY_PART_CHARS = 16_000;

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

/** The answer to a command refused with `error`: `unavailable` if the store was away, else `failed`. */
export function refused(error: CommandError): Answer {
  return refusal(error instanceof UnavailableError ? "unavailable" : "failed", error.message);
}

/**
 * The answer to command `command` of `user` that failed with `error`: its message when it is one
 * for the user (a usage or command error), otherwise a generic one, with the error logged.
 */
export function failure(command: string, user: string, error: unknown, logger: Logger): Answer {
  if (error instanceof UsageError) return refusal("usage", error.message);
  if (error instanceof CommandError) return refused(error);
  logger.warn(`Command "${command}" from ${user} failed: ${String(error)}`);
  return refusal("failed", `Error. ${command} failed on the server.`);
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

/**
 * Sends a reply to `session`, a long one (RDM of a big board) as several frames, each well under
 * the frame limit, waiting for the queue to drain between them so a large but legitimate reply
 * never trips the slow-reader limit. Meanwhile this session's next frames wait; others carry on.
 */
export async function replyInParts(
  session: Session,
  id: number,
  lines: string[],
  data: ReplyData | undefined,
): Promise<void> {
  const roomFor = session.sendQueueLimit / 2;
  let part: string[] = [];
  let size = 0;
  for (const line of lines) {
    if (part.length > 0 && size + line.length > REPLY_PART_CHARS) {
      session.send({ t: "reply", id, ok: true, lines: part, more: true });
      await session.whenBelow(roomFor);
      part = [];
      size = 0;
    }
    part.push(line);
    size += line.length;
  }
  session.send({ t: "reply", id, ok: true, lines: part, ...(data ? { data } : {}) });
}

/**
 * Event frames as bytes, encoded once however many users an event goes to: an event for many (a
 * broadcast, a presence notice) is one object delivered to each in turn, so the last one encoded
 * is kept.
 */
export class EventEncoder {
  #last: { event: ServerEvent; bytes: Uint8Array } | undefined;

  /** The frame of `event`, with its newline. */
  encode(event: ServerEvent): Uint8Array {
    const last = this.#last;
    if (last?.event === event) return last.bytes;
    const bytes = encodeFrameText(encodeFrame({ t: "event", ...event }));
    this.#last = { event, bytes };
    return bytes;
  }
}
