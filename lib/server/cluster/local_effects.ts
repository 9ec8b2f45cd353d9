/**
 * What a node does for its own sessions as it decides each proposal (docs/CLUSTER.md):
 * every node decides every proposal in `seq` order, and each acts on the outcome for the users
 * whose sessions it holds, so a notice or a message reaches its recipient once, from the node that
 * holds it, whichever node proposed it. A login, a logout or a lost node also rewrites this node's
 * userlog.txt from the replicated online list, the same on every node. A node that hears its own
 * `node-lost` was reported lost (it lost its lease for too long, or a previous run under its id
 * died): it ends whatever sessions it holds, whose users the cluster has logged out already.
 *
 * Private sessions and file tickets live in each node's Broker, which follows the log: every node
 * records the requests, sessions and file tickets decided, and ends the sessions (telling the peers
 * it holds, as a single server would) that a stopprivate, a block, a logout, a replacing login or a
 * lost node ends. The node that proposed a stopprivate, a block or a logout does that itself
 * instead, as a single server does, after its reply (handlers, Roster.leave).
 *
 * @module
 */
import type { Broker } from "../broker.ts";
import type { Notify } from "../replies.ts";
import { presenceEvent } from "../roster.ts";
import type { Store } from "../store/store.ts";
import { ticketEvent } from "./brokering.ts";
import { broadcastEvent, messageEvent } from "./delivery.ts";
import { activeUsersOf } from "./online_list.ts";
import type { Notice } from "./presence.ts";
import type { Outcome, Proposal } from "./proposals.ts";

/** What a node acts on: its id, its Store, and its own sessions. */
export interface LocalSessions {
  node: string;
  store: Pick<Store, "online" | "userLog">;
  /** Delivers an event to `to` if this node holds their session (else does nothing). */
  deliver: Notify;
  /** Ends this node's session `session` of `user`, which a login replaced (logged out already). */
  replaced(user: string, session: string): void;
  /** Ends every session this node holds: the cluster decided this node was lost. */
  lost(): void;
  /** This node's broker, which records private-messaging requests, sessions and file tickets. */
  broker: Pick<
    Broker,
    "asked" | "answered" | "stopped" | "userLeft" | "blocked" | "issuedFile"
  >;
}

/**
 * Acts on `proposal`'s `outcome`, proposed by node `proposer`, for this node's sessions; resolves
 * once userlog.txt is written.
 */
export function actOnDecided(
  local: LocalSessions,
  proposal: Proposal,
  outcome: Outcome,
  proposer: string,
): Promise<void> | void {
  if (!outcome.ok) return;
  const { broker, deliver } = local;
  // What the proposer's handler (or Roster.leave) does itself after its reply.
  const elsewhere = proposer !== local.node;
  switch (proposal.t) {
    case "login": {
      const { replaced, presence } = outcome as Extract<Outcome<"login">, { ok: true }>;
      if (replaced?.node === local.node) local.replaced(proposal.user, replaced.session);
      const written = tellAndMirror(local, presence);
      // The replaced session's private sessions end (on its own node, as it was closed).
      if (replaced) broker.userLeft(proposal.user, deliver);
      return written;
    }
    case "logout": {
      const { left, presence } = outcome as Extract<Outcome<"logout">, { ok: true }>;
      const written = tellAndMirror(local, presence);
      if (left && elsewhere) broker.userLeft(proposal.user, deliver);
      return written;
    }
    case "node-lost": {
      const { users, presence } = outcome as Extract<Outcome<"node-lost">, { ok: true }>;
      if (proposal.node === local.node) local.lost();
      const written = tellAndMirror(local, presence);
      for (const user of users) broker.userLeft(user, deliver);
      return written;
    }
    case "block":
      if (!elsewhere) return;
      // As the block command does (handlers/messaging.ts).
      broker.blocked(proposal.by, proposal.other, deliver);
      return;
    case "message": {
      const { node } = outcome as Extract<Outcome<"message">, { ok: true }>;
      if (node !== local.node) return;
      return local.deliver(proposal.to, messageEvent(proposal.from, proposal.line, proposal.ref));
    }
    case "broadcast": {
      const { to } = outcome as Extract<Outcome<"broadcast">, { ok: true }>;
      // One event for every recipient, so that it is encoded once.
      const event = broadcastEvent(proposal.from, proposal.text);
      for (const user of to) local.deliver(user, event);
      return;
    }
    case "file-ticket": {
      const { node, tickets } = outcome as Extract<Outcome<"file-ticket">, { ok: true }>;
      broker.issuedFile(proposal.from, proposal.to, tickets[0].id, proposal.fileName);
      if (node === local.node) deliver(proposal.to, ticketEvent(tickets[1]));
      return;
    }
    case "private-ask":
      return broker.asked(proposal.from, proposal.to, proposal.at, deliver);
    case "private-answer": {
      const { tickets } = outcome as Extract<Outcome<"private-answer">, { ok: true }>;
      return broker.answered(proposal.from, proposal.to, tickets, deliver);
    }
    case "private-stop":
      if (!elsewhere) return;
      return broker.stopped(proposal.user, proposal.peer, proposal.ticketId, deliver);
  }
}

/** Delivers `notices` to this node's recipients, and rewrites userlog.txt from the online list. */
function tellAndMirror(local: LocalSessions, notices: Notice[]): Promise<void> {
  const written = local.store.userLog.replace(activeUsersOf(local.store.online));
  for (const { user, what, to } of notices) {
    const event = presenceEvent(user, what);
    for (const other of to) local.deliver(other, event);
  }
  return written;
}
