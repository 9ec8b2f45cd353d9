/**
 * The peer-to-peer broker across nodes (docs/CLUSTER.md, step 3): a `UPD` to a user whose session
 * this node does not hold travels through the log as a `file-ticket` proposal. Its proposer picks
 * the ticket's id and key (randomness has no place in decide()); deciding it applies the broker's
 * rules in `seq` order (the block first, so a blocked user never learns the blocker is online,
 * then presence, with the broker's texts) and pairs the tickets with both peers' UDP addresses
 * from the replicated online list. The node holding the recipient hands them their ticket
 * (local_effects.ts); the proposer replies with the sender's. Nothing in the state changes.
 *
 * @module
 */
import { pairedTickets, type PeerAddress, type Ticket, type TicketSecret } from "../../p2p/mod.ts";
import { CommandError } from "../../shared/errors.ts";
import type { ServerEvent } from "../../shared/protocol.ts";
import type { Store } from "../store/store.ts";
import type { OnlineEntry } from "./online_list.ts";
import type { Decide } from "./proposals.ts";

/** The proposals of the peer-to-peer broker. */
export type BrokerProposal =
  /** `from` sends `fileName` (a safe base name) to `to`, with the ticket's id and key. */
  { t: "file-ticket"; from: string; to: string; fileName: string } & TicketSecret;

/** What an accepted brokering proposal tells its proposer (and every node). */
export interface BrokerAccepted {
  /** The node holding the recipient, and the tickets `[for the sender, for the recipient]`. */
  "file-ticket": { node: string; tickets: [Ticket, Ticket] };
}

/** The text a file sent to a user who blocked the sender is refused with (as the Broker's). */
export function fileBlockedMessage(to: string): string {
  return `Your file could not be sent as ${to} has blocked you`;
}

/** The UDP address of an online session, as the cluster's online list holds it. */
function addressOf(entry: OnlineEntry): PeerAddress {
  return { hostname: entry.ip, port: entry.udpPort };
}

/**
 * The online entries of `from` and `to` if `from` may reach `to` and both are online, checked in
 * the Broker's order (the block before presence); else a CommandError with `blocked` or the
 * Broker's texts.
 */
function peers(store: Store, from: string, to: string, blocked: string) {
  if (!store.relations.canReach(from, to)) throw new CommandError(blocked);
  const target = store.online.get(to);
  if (!target) throw new CommandError(`${to} is offline`);
  const sender = store.online.get(from);
  if (!sender) throw new CommandError(`${from} is no longer online`);
  return { sender, target };
}

/** The event the recipient of a file ticket gets. */
export function ticketEvent(ticket: Ticket, lines: string[] = []): ServerEvent {
  return { kind: "ticket", lines, data: { ticket } };
}

/** One rule per kind of {@linkcode BrokerProposal}. */
export const BROKER_RULES: { [K in BrokerProposal["t"]]: Decide<K> } = {
  "file-ticket"(store, { from, to, fileName, id, key }) {
    const { sender, target } = peers(store, from, to, fileBlockedMessage(to));
    const tickets = pairedTickets({
      kind: "file",
      from,
      to,
      fileName,
      fromAddress: addressOf(sender),
      toAddress: addressOf(target),
    }, { id, key });
    return { accepted: { node: target.node, tickets }, changes: [] };
  },
};
