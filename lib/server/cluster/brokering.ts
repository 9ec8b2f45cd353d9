/**
 * The peer-to-peer broker across nodes (docs/CLUSTER.md): a `UPD` to a user whose session
 * this node does not hold travels through the log as a `file-ticket` proposal. Its proposer picks
 * the ticket's id and key (randomness has no place in decide()); deciding it applies the broker's
 * rules in `seq` order (the block first, so a blocked user never learns the blocker is online,
 * then presence, with the broker's texts) and pairs the tickets with both peers' UDP addresses
 * from the replicated online list. The node holding the recipient hands them their ticket
 * (local_effects.ts); the proposer replies with the sender's. Nothing in the state changes.
 *
 * `startprivate` to a user on another node is a `private-ask`, decided with the same rules; every
 * node records the request in its Broker, and the node holding the target asks them. Their y/n is
 * a `private-answer`, whose chat tickets are paired with the addresses of the online list as it is
 * decided; every node then drops the request and records the session, and the nodes holding the
 * peers hand them their tickets (or tell the requester of a no).
 *
 * What ends a private session across nodes ends it on every node, each telling the peers it holds
 * what a single server tells them: a `stopprivate` of a peer on another node is a `private-stop`
 * naming the session's ticket; a block, a logout, a replacing login and a lost node end it as
 * every node decides those (local_effects.ts). The node that proposed a stopprivate, a block or a
 * logout ends it for its own users as a single server does (after the reply); the others as they
 * decide it. A file ticket decided here is remembered by every node's Broker, so that a block,
 * decided on any node, revokes it and both peers are told by the nodes holding them.
 *
 * @module
 */
import { REFUSED } from "../broker_texts.ts";
import {
  newTicketSecret,
  pairedTickets,
  type PeerAddress,
  type Ticket,
  type TicketSecret,
} from "../../p2p/mod.ts";
import { CommandError } from "../../shared/errors.ts";
import type { ServerEvent } from "../../shared/protocol.ts";
import { type Answer, refusal, refused } from "../replies.ts";
import type { OnlineEntry } from "../store/journal.ts";
import type { Store } from "../store/store.ts";
import type { RuleTable } from "./rule.ts";

/** The proposals of the peer-to-peer broker. */
export type BrokerProposal =
  /** `from` sends `fileName` (a safe base name) to `to`, with the ticket's id and key. */
  | ({ t: "file-ticket"; from: string; to: string; fileName: string } & TicketSecret)
  /** `from` asks `to` for private messaging at `at` (`startprivate`). */
  | { t: "private-ask"; from: string; to: string; at: number }
  /** `to` answers `from`'s request, with the chat ticket's id and key should it be yes. */
  | ({ t: "private-answer"; from: string; to: string; yes: boolean } & TicketSecret)
  /** `user` stops their private session `ticketId` with `peer` (`stopprivate`). */
  | { t: "private-stop"; user: string; peer: string; ticketId: string };

/** What an accepted brokering proposal tells its proposer (and every node). */
export interface BrokerAccepted {
  /** The node holding the recipient, and the tickets `[for the sender, for the recipient]`. */
  "file-ticket": { node: string; tickets: [Ticket, Ticket] };
  /** Every node records the request; the one holding `to` asks them. */
  "private-ask": Record<never, never>;
  /** The chat tickets `[for from, for to]` of a yes; null for a no. */
  "private-answer": { tickets: [Ticket, Ticket] | null };
  /** Every node ends the session if it still holds it; the one holding `peer` tells them. */
  "private-stop": Record<never, never>;
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
  if (!target) throw new CommandError(REFUSED.offline(to));
  const sender = store.online.get(from);
  if (!sender) throw new CommandError(`${from} is no longer online`);
  return { sender, target };
}

/** The event the recipient of a file ticket gets. */
export function ticketEvent(ticket: Ticket, lines: string[] = []): ServerEvent {
  return { kind: "ticket", lines, data: { ticket } };
}

/** One rule per kind of {@linkcode BrokerProposal}. */
export const BROKER_RULES: RuleTable<BrokerProposal, BrokerAccepted, never> = {
  "file-ticket"(store, { from, to, fileName, id, key }) {
    const { sender, target } = peers(store, from, to, REFUSED.fileBlocked(to));
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
  "private-ask"(store, { from, to }) {
    peers(store, from, to, REFUSED.privateBlocked(to));
    return { accepted: {}, changes: [] };
  },
  "private-answer"(store, { from, to, yes, id, key }) {
    // As the Broker's answer: the requester left, or the two blocked each other since.
    const gone = REFUSED.gone(from);
    const sender = store.online.get(from);
    const target = store.online.get(to);
    if (!sender || !target || !store.relations.canReach(from, to)) throw new CommandError(gone);
    if (!yes) return { accepted: { tickets: null }, changes: [] };
    const tickets = pairedTickets({
      kind: "chat",
      from,
      to,
      fromAddress: addressOf(sender),
      toAddress: addressOf(target),
    }, { id, key });
    return { accepted: { tickets }, changes: [] };
  },
  "private-stop"() {
    // Private sessions live in the nodes' Brokers, which every node changes in log order.
    return { accepted: {}, changes: [] };
  },
};

/**
 * What {@linkcode answerAcross} needs of the cluster: cluster.ts's Cluster, which this module
 * cannot import (cluster.ts leads here through proposals.ts).
 */
export interface BrokerProposer {
  propose(proposal: BrokerProposal): Promise<{ ok: true } | { ok: false; reason: string }>;
}

/**
 * Proposes `ask.to`'s answer to a request from `ask.from`, a user on another node (the Broker's
 * PendingAsk); the reply to the answer (every node acts on the outcome: local_effects.ts). A
 * refusal is a `failed` reply.
 */
export async function answerAcross(
  cluster: BrokerProposer,
  ask: { from: string; to: string },
  yes: boolean,
): Promise<Answer> {
  const { from, to } = ask;
  try {
    const outcome = await cluster.propose({
      t: "private-answer",
      from,
      to,
      yes,
      ...newTicketSecret(),
    });
    return outcome.ok ? { ok: true, lines: [] } : refusal("failed", outcome.reason);
  } catch (error) {
    // The log could not take it (Service unavailable).
    if (error instanceof CommandError) return refused(error);
    throw error;
  }
}
