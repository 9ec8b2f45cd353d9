/**
 * The replica half of cluster mode (docs/CLUSTER.md): applying a change that another node made to
 * this node's Store, so that two stores that apply the same changes in the same order are the same
 * to every reader. Each change goes to its section's narrow `apply…` method, which changes the
 * memory only: a replica never writes down what it applies (the change is already in the log), and
 * it does not check the rules again (the node that made the change checked them).
 *
 * Applying a change twice leaves the state it left the first time (a replica may hear of a change
 * twice across a reconnect): blocks, last-seen times and lockouts are set to recorded values, and
 * messages are found by id. Re-applying a whole stretch of the log from its start converges too,
 * since every change's last word on a block, a user, a message or a board post comes last again.
 */
import type { Change } from "./journal.ts";
import type { Store } from "./store.ts";

/** How one kind of change is applied; the promise settles once the files it touches are written. */
type Apply<K extends Change["t"]> = (
  store: Store,
  change: Extract<Change, { t: K }>,
) => void | Promise<void>;

/** Nothing to apply in memory; see the table for why. */
const NOTHING = () => {};

/** One entry per kind of change: the compiler refuses a kind left out. */
const APPLY: { [K in Change["t"]]: Apply<K> } = {
  block: ({ relations }, { by, other }) => relations.applyBlock(by, other),
  unblock: ({ relations }, { by, other }) => relations.applyUnblock(by, other),
  mail: ({ mailbox }, { mail }) => mailbox.applyMail(mail),
  delivered: ({ mailbox }, { ids }) => mailbox.applyDelivered(ids),
  seen: ({ lastSeen }, { user, time }) => lastSeen.applySeen(user, time),
  lockout: ({ guard }, { user, failures, until }) => guard.applyLockout({ user, failures, until }),
  post: ({ board }, { post }) => board.applyPost(post),
  unpost: ({ board }, { id }) => board.applyUnpost(id),
  "clear-board": ({ board }) => board.applyClear(),
  // `online` and `offline` are the storage's record of who is online, so that a run that was
  // killed still gives its users a last-seen time at the next start; in memory, LastSeen changes
  // only with the `seen` that follows every `offline`. Who is online now (the active users and
  // userlog.txt) belongs to the sessions a node holds, and carries their address and UDP port,
  // which these changes lack: a cluster replicates it with its login and logout proposals
  // (cluster/presence.ts).
  online: NOTHING,
  offline: NOTHING,
  // An `account` change is one node's write-ahead for its own credentials.txt, which
  // `account-done` closes once that file has it: nothing another node needs. A cluster's accounts
  // are decided by proposals of their own (lib/server/cluster/accounts.ts), which every node
  // applies to its AccountStore and mirrors into its own credentials.txt.
  account: NOTHING,
  "account-done": NOTHING,
};

/**
 * Applies `change`, made by another node, to `store`'s sections without writing it down. The
 * state changes before this returns, so changes applied in a row need no awaiting and a read right
 * after sees them; the promise settles once the files that mirror it (messagelog.txt) are
 * written. A failed file write is reported to the store's logger and healed at the next write.
 */
export function applyChange(store: Store, change: Change): Promise<void> {
  const apply = APPLY[change.t] as Apply<Change["t"]>;
  return Promise.resolve(apply(store, change));
}
