/**
 * Delivery across nodes (docs/CLUSTER.md): a direct message to a user whose session this
 * node does not hold, and a broadcast, travel through the log as proposals. Deciding one applies
 * the block rule in `seq` order and names who gets it; every node delivers it to the recipients
 * whose sessions it holds (local_effects.ts), so each arrives once. A broadcast changes no state;
 * a message to a user offline when it is decided is stored as an offline one (proposals.ts's
 * `message` rule, which is the `mail` rule then).
 *
 * @module
 */
import { CommandError } from "../../shared/errors.ts";
import type { ServerEvent } from "../../shared/protocol.ts";
import { BLOCKED_MESSAGE } from "../relations.ts";
import type { Store } from "../store/store.ts";
import type { RuleTable } from "./rule.ts";

/** The proposals that deliver something and change nothing. */
export type DeliveryProposal =
  /**
   * `line` (`<from>: <text>`) for `to`, proposed at `time`; `ref` as the `cmd` frame's, passed
   * on (an offline message's ref is derived from it when absent, as `mail`'s).
   */
  | { t: "message"; from: string; to: string; line: string; ref?: string; time: number }
  /** `text` for every other online user who may get it. */
  | { t: "broadcast"; from: string; text: string };

/** What an accepted delivery tells its proposer. */
export interface DeliveryAccepted {
  /** The node that delivers it, or null: `to` was offline, and it waits for them. */
  message: { node: string | null };
  /** Whom it goes to, in login order, and how many were left out (they blocked the sender). */
  broadcast: { to: string[]; skipped: number };
}

/** The event a direct message is delivered as. */
export function messageEvent(from: string, line: string, ref?: string): ServerEvent {
  return { kind: "message", lines: [line], data: { from, ...(ref === undefined ? {} : { ref }) } };
}

/** The event a broadcast is delivered as. */
export function broadcastEvent(from: string, text: string): ServerEvent {
  return { kind: "broadcast", lines: [`${from}: ${text}`], data: { from } };
}

/**
 * The node delivering a message from `from` to `to` if `to` is online and may get it (else a
 * CommandError); undefined if `to` is offline.
 */
export function deliveringNode(store: Store, from: string, to: string): string | undefined {
  const entry = store.online.get(to);
  if (entry && !store.relations.canReach(from, to)) throw new CommandError(BLOCKED_MESSAGE);
  return entry?.node;
}

/** The rule for a broadcast, which changes nothing. */
export const DELIVERY_RULES: RuleTable<
  Extract<DeliveryProposal, { t: "broadcast" }>,
  DeliveryAccepted,
  never
> = {
  broadcast(store, { from }) {
    const others = store.online.entries.map((entry) => entry.user).filter((user) => user !== from);
    const to = others.filter((user) => store.relations.canReach(from, user));
    return { accepted: { to, skipped: others.length - to.length }, changes: [] };
  },
};
