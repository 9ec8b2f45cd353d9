/**
 * Proposing and deciding (docs/CLUSTER.md): a command's intent as data, a
 * {@linkcode Proposal}, carries nothing that depends on the state it will meet: no board ids, no
 * offline-message ids, no checks made yet. It is appended to the change log; every node applies
 * every entry in `seq` order, and applies a proposal with {@linkcode decide}, which checks it
 * against that node's Store as it is then, assigns ids and numbers, and applies the resulting
 * Changes through the sections' `apply…` methods (replica.ts). Nodes that have applied the same
 * entries in the same order hold the same state, so they decide the same: the proposer replies
 * with the outcome its own node decided, and every other node agrees with it.
 *
 * Proposals travel in the log's `changes` table, in the same `change` column as a storage's
 * committed Changes, wrapped as `{ t: "proposal", proposal }` (a {@linkcode ProposalEntry}), so
 * one `seq` orders both and one tail follows both. The wrapper's `t` is one no Change has.
 *
 * Logins, logouts, node losses and lockouts are decided by presence.ts's rules; what they decide
 * about who is online goes to the Store's `online` list as {@linkcode OnlineChange}s, which are
 * not a journal's Changes (no storage writes them down yet).
 *
 * Registrations, password changes and a starting node's accounts are decided by accounts.ts's
 * rules; what they decide goes to the Store's accounts as {@linkcode AccountChange}s (and from there
 * to each node's credentials.txt).
 *
 * The {@linkcode Sequencer} (sequencer.ts) appends proposals and follows the log.
 *
 * @module
 */
import { CommandError } from "../../shared/errors.ts";
import { truncateToSecond } from "../../shared/timestamp.ts";
import { BLOCKED_MESSAGE } from "../relations.ts";
import type { Change, PostRecord, StoredMessage } from "../store/journal.ts";
import { applyChange } from "../store/replica.ts";
import type { Store } from "../store/store.ts";
import {
  ACCOUNT_RULES,
  type AccountAccepted,
  type AccountChange,
  type AccountProposal,
  applyAccountChange,
  isAccountChange,
} from "./accounts.ts";
import { BROKER_RULES, type BrokerAccepted, type BrokerProposal } from "./brokering.ts";
import {
  deliveringNode,
  DELIVERY_RULES,
  type DeliveryAccepted,
  type DeliveryProposal,
} from "./delivery.ts";
import {
  applyOnlineChange,
  isOnlineChange,
  type OnlineChange,
  PRESENCE_RULES,
  type PresenceAccepted,
  type PresenceProposal,
} from "./presence.ts";

/** A command's intent, as data: what a node proposes and every node decides. */
export type Proposal =
  /** A board post (MSG); `time` is when it was proposed, epoch ms. */
  | { t: "post"; author: string; text: string; time: number }
  /**
   * A board delete (DLT) of message `number` posted or last edited at `time`, by `requester`;
   * `at` is when it was proposed (the reply's timestamp).
   */
  | { t: "unpost"; number: number; time: number; requester: string; at: number }
  /** A board edit (EDT): as `unpost`, with the new text; `at` becomes the message's time. */
  | { t: "edit"; number: number; time: number; requester: string; text: string; at: number }
  /**
   * An offline message for `to`. `ref` is the id the recipient's client recognises a second copy
   * by: the proposer picks it (the Sequencer does when it is absent), since a ref made from a
   * node's own ids would differ between nodes.
   */
  | { t: "mail"; to: string; from: string; line: string; ref?: string; time: number }
  /** Login `session` of `user` taking the offline messages waiting: once, across racing logins. */
  | { t: "take-mail"; user: string; session: string }
  | { t: "block"; by: string; other: string }
  | { t: "unblock"; by: string; other: string }
  /** The board emptied (as at a start without --keep-board). */
  | { t: "clear-board" }
  | PresenceProposal
  | DeliveryProposal
  | BrokerProposal
  | AccountProposal;

/** How a proposal travels in the change log (the `change` column). */
export interface ProposalEntry {
  t: "proposal";
  proposal: Proposal;
}

/** What an accepted proposal of each kind tells its proposer. */
export interface Accepted
  extends PresenceAccepted, DeliveryAccepted, BrokerAccepted, AccountAccepted {
  /** The post's number, and its time (whole seconds). */
  post: { number: number; time: number };
  /** The message as it was, with the delete's time (whole seconds) as `time`. */
  unpost: { number: number; author: string; text: string; edited: boolean; time: number };
  /** The message's number, author and new time (whole seconds). */
  edit: { number: number; author: string; time: number };
  /** The stored message's id (this node's) and its ref (every node's). */
  mail: { id: number; ref: string };
  /** The messages handed to this login, oldest first (none if another login took them). */
  "take-mail": { messages: StoredMessage[] };
  /** Whether the block was new (false: it was in force already). */
  block: { changed: boolean };
  /** Whether there was a block to lift. */
  unblock: { changed: boolean };
  "clear-board": Record<never, never>;
}

/** A refused proposal: the reason, as the user reads it. */
export interface Refused {
  ok: false;
  reason: string;
}

/** What a proposal of kind `K` came to. */
export type Outcome<K extends Proposal["t"] = Proposal["t"]> =
  | ({ ok: true } & Accepted[K])
  | Refused;

/**
 * A change a decision applies: a journal's Change, or one to the cluster's online list or to its
 * accounts.
 */
export type DecidedChange = Change | OnlineChange | AccountChange;

/** What {@linkcode decide} did: the outcome, and the changes it applied (none if refused). */
export interface Decision<K extends Proposal["t"] = Proposal["t"]> {
  outcome: Outcome<K>;
  changes: DecidedChange[];
  /** Settles once the files that mirror the changes (messagelog.txt, credentials.txt) are written. */
  written: Promise<void>;
}

/**
 * The rule for proposals of kind `K`: the data of an accepted one and the changes it makes,
 * decided without changing anything; a CommandError refuses it. The areas' modules type their
 * tables with rule.ts's RuleTable, which DECIDE below holds them to.
 */
export type Decide<K extends Proposal["t"]> = (
  store: Store,
  proposal: Extract<Proposal, { t: K }>,
) => { accepted: Accepted[K]; changes: DecidedChange[] };

/** The board message numbered `number`, if `requester` may `verb` it; else a CommandError. */
function checked(store: Store, proposal: { number: number; time: number; requester: string }) {
  return (verb: "delete" | "edit"): PostRecord =>
    store.board.check(proposal.number, proposal.time, proposal.requester, verb);
}

/**
 * A ref made from the message alone, for a proposal that came without one: the same on every node
 * (unlike one made from an id), though unlike the Sequencer's random refs not unique across runs.
 */
function derivedRef(proposal: Extract<Proposal, { t: "mail" }>, id: number): string {
  const text = `${proposal.to}\n${proposal.from}\n${proposal.time}\n${proposal.line}`;
  let hash = 0x811c9dc5;
  for (const unit of new TextEncoder().encode(text)) hash = Math.imul(hash ^ unit, 0x01000193);
  return "o" + (hash >>> 0).toString(16).padStart(8, "0") +
    (id % 2 ** 32).toString(16).padStart(8, "0");
}

/** One entry per kind of proposal: the compiler refuses a kind left out. */
const DECIDE: { [K in Proposal["t"]]: Decide<K> } = {
  post(store, { author, text, time }) {
    const post = { id: store.board.nextId, author, text, time: truncateToSecond(time) };
    return {
      accepted: { number: store.board.size + 1, time: post.time },
      changes: [{ t: "post", post: { ...post, edited: false } }],
    };
  },
  unpost(store, proposal) {
    const { id, author, text, edited } = checked(store, proposal)("delete");
    const time = truncateToSecond(proposal.at);
    return {
      accepted: { number: proposal.number, author, text, edited, time },
      changes: [{ t: "unpost", id }],
    };
  },
  edit(store, proposal) {
    const message = checked(store, proposal)("edit");
    const time = truncateToSecond(proposal.at);
    return {
      accepted: { number: proposal.number, author: message.author, time },
      changes: [{ t: "post", post: { ...message, text: proposal.text, time, edited: true } }],
    };
  },
  mail({ mailbox, relations }, proposal) {
    const { to, from, line, time } = proposal;
    // Checked again here: a block decided before this message may be one the proposer's node
    // had not applied yet when it proposed.
    if (!relations.canReach(from, to)) throw new CommandError(BLOCKED_MESSAGE);
    mailbox.checkRoom(to, from);
    const id = mailbox.nextId;
    const ref = proposal.ref ?? derivedRef(proposal, id);
    return {
      accepted: { id, ref },
      changes: [{ t: "mail", mail: { id, to, from, line, ref, time } }],
    };
  },
  message(store, proposal) {
    const { from, to, line, time } = proposal;
    const node = deliveringNode(store, from, to);
    if (node !== undefined) return { accepted: { node }, changes: [] };
    // Offline when it is decided (whatever the proposer's node saw): it waits for them.
    const ref = proposal.ref === undefined ? {} : { ref: proposal.ref };
    const { changes } = DECIDE.mail(store, { t: "mail", to, from, line, ...ref, time });
    return { accepted: { node: null }, changes };
  },
  "take-mail"({ mailbox }, { user }) {
    const messages = mailbox.ready(user);
    const ids = messages.map((message) => message.id);
    return { accepted: { messages }, changes: ids.length > 0 ? [{ t: "delivered", ids }] : [] };
  },
  block({ relations }, { by, other }) {
    const changed = !relations.hasBlocked(by, other);
    return { accepted: { changed }, changes: changed ? [{ t: "block", by, other }] : [] };
  },
  unblock({ relations }, { by, other }) {
    const changed = relations.hasBlocked(by, other);
    return { accepted: { changed }, changes: changed ? [{ t: "unblock", by, other }] : [] };
  },
  "clear-board"() {
    return { accepted: {}, changes: [{ t: "clear-board" }] };
  },
  ...PRESENCE_RULES,
  ...DELIVERY_RULES,
  ...BROKER_RULES,
  ...ACCOUNT_RULES,
};

/**
 * Decides `proposal` against `store` as it is now, and applies what it comes to: checks the
 * rules the sections check (with their texts), assigns ids and numbers from the store's state,
 * and applies the resulting Changes through the sections' `apply…` methods (nothing is written
 * down: the proposal is in the log already). A function of the store's state and the proposal
 * alone (no clock, no randomness), so every node that applied the same log decides the same.
 * A refusal changes nothing. The state has changed when this returns.
 */
export function decide<P extends Proposal>(store: Store, proposal: P): Decision<P["t"]> {
  const rule = DECIDE[proposal.t] as Decide<P["t"]>;
  let decided: ReturnType<typeof rule>;
  try {
    decided = rule(store, proposal as unknown as Extract<Proposal, { t: P["t"] }>);
  } catch (error) {
    if (!(error instanceof CommandError)) throw error;
    return {
      outcome: { ok: false, reason: error.message },
      changes: [],
      written: Promise.resolve(),
    };
  }
  const written = decided.changes.map((change) =>
    isOnlineChange(change)
      ? applyOnlineChange(store, change)
      : isAccountChange(change)
      ? applyAccountChange(store, change)
      : applyChange(store, change)
  );
  return {
    outcome: { ok: true, ...decided.accepted } as Outcome<P["t"]>,
    changes: decided.changes,
    written: Promise.all(written).then(() => {}),
  };
}

/** The proposal an entry of the log carries, or undefined for a Change. */
export function proposalOf(entry: { t: string }): Proposal | undefined {
  return entry.t === "proposal" ? (entry as ProposalEntry).proposal : undefined;
}
