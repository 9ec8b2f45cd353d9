/**
 * Accounts across nodes (issue 12: registration and `passwd` hold as if there were one server):
 * the cluster's accounts are replicated state decided in log order, kept by each node's
 * AccountStore (its replicated map, which `find` and `check` read in cluster mode) and mirrored
 * into each node's credentials.txt after every decision. Passwords are hashed on the proposing
 * node, in its hash pool, before it proposes: the log carries only hashes.
 *
 * - `register` adds an account unless the cluster has the name already (refused with the single
 *   server's `Username X is already taken`): of two nodes registering one name at once, the first
 *   in the log wins, everywhere.
 * - `set-password` replaces a secret, given the secret the proposer checked the old password
 *   against; if the account's secret changed meanwhile (a `passwd` on another node came first) it
 *   is refused as a wrong old password, as a single server checking in turn would.
 * - `adopt-accounts` is a node's start: the accounts of its own credentials.txt that the cluster
 *   does not know are added (the first node seeds the cluster from its file; a node with extra
 *   hand-added accounts adds them); those the cluster knows keep the cluster's secret, since the
 *   file may be stale (a password changed on another node must not come back). Once it is decided
 *   the node has caught up to its own start, and rewrites its file to the cluster's secrets.
 *
 * @module
 */
import { CommandError } from "../../shared/errors.ts";
import { type AccountLedger, type AccountRecord, WrongPasswordError } from "../accounts.ts";
import { isHashed, normaliseName, usernameProblem } from "../credentials.ts";
import type { Store } from "../store/store.ts";
import type { RuleTable } from "./rule.ts";

/** The proposals about accounts; every `secret` is an scrypt hash. */
export type AccountProposal =
  /** A new account (registration). */
  | { t: "register"; user: string; secret: string }
  /** `user`'s new `secret` (`passwd`), in place of `old`, the one the old password matched. */
  | { t: "set-password"; user: string; secret: string; old: string }
  /** The accounts of a starting node's credentials.txt, for those the cluster does not know. */
  | { t: "adopt-accounts"; accounts: AccountRecord[] };

/** What an accepted account proposal tells its proposer. */
export interface AccountAccepted {
  register: Record<never, never>;
  "set-password": Record<never, never>;
  /** The names the cluster took from the file (those it did not know), in the file's order. */
  "adopt-accounts": { added: string[] };
}

/** A change to the cluster's accounts: `user`'s secret is now `secret` (new or replaced). */
export interface AccountChange {
  t: "account-set";
  user: string;
  secret: string;
}

/** Whether `change` is an {@linkcode AccountChange}. */
export function isAccountChange(change: { t: string }): change is AccountChange {
  return change.t === "account-set";
}

/**
 * Applies an {@linkcode AccountChange} to `store`'s accounts at once; the promise settles once
 * credentials.txt has it (a failed write is logged, and healed at the next one).
 */
export function applyAccountChange(store: Store, change: AccountChange): Promise<void> {
  return store.accounts.applyAccount(change.user, change.secret);
}

/** How many accounts one `adopt-accounts` proposal carries at most (a file's are split). */
export const ADOPT_BATCH = 500;

/** `user` as the cluster keys it, if it is a valid name; else a CommandError. */
function validName(user: string): string {
  const problem = usernameProblem(user);
  if (problem) throw new CommandError(problem);
  return normaliseName(user);
}

/** A CommandError unless `secret` is an scrypt hash: the log carries no clear-text password. */
function checkHashed(secret: string): void {
  if (!isHashed(secret)) throw new CommandError("The account's secret must be a hash");
}

/** The rules of the account proposals, spread into proposals.ts's DECIDE table. */
export const ACCOUNT_RULES: RuleTable<AccountProposal, AccountAccepted, AccountChange> = {
  register({ accounts }, proposal) {
    const user = validName(proposal.user);
    checkHashed(proposal.secret);
    if (accounts.known(user) !== undefined) {
      throw new CommandError(`Username ${proposal.user} is already taken`);
    }
    return { accepted: {}, changes: [{ t: "account-set", user, secret: proposal.secret }] };
  },
  "set-password"({ accounts }, proposal) {
    const user = validName(proposal.user);
    checkHashed(proposal.secret);
    if (accounts.known(user) !== proposal.old) throw new WrongPasswordError();
    return { accepted: {}, changes: [{ t: "account-set", user, secret: proposal.secret }] };
  },
  "adopt-accounts"({ accounts }, proposal) {
    const added = new Set<string>();
    const changes: AccountChange[] = [];
    for (const { user: name, secret } of proposal.accounts) {
      // What a rule cannot take is skipped, not refused: the rest of the file still counts.
      const user = normaliseName(name);
      if (usernameProblem(user) || !isHashed(secret)) continue;
      if (accounts.known(user) !== undefined || added.has(user)) continue;
      added.add(user);
      changes.push({ t: "account-set", user, secret });
    }
    return { accepted: { added: [...added] }, changes };
  },
};

/**
 * What {@linkcode accountLedger} needs of the cluster: cluster.ts's Cluster, which this module
 * cannot import (cluster.ts leads here through proposals.ts).
 */
export interface AccountProposer {
  propose<P extends AccountProposal>(
    proposal: P,
  ): Promise<({ ok: true } & AccountAccepted[P["t"]]) | { ok: false; reason: string }>;
}

/**
 * What `proposal` came to through `cluster`, if accepted; a refusal throws a CommandError with its
 * reason (cluster.ts's `accepted`, which this module cannot import: cluster.ts leads here).
 */
async function proposed<P extends AccountProposal>(
  cluster: AccountProposer,
  proposal: P,
): Promise<AccountAccepted[P["t"]]> {
  const outcome = await cluster.propose(proposal);
  if (!outcome.ok) throw new CommandError(outcome.reason);
  return outcome as AccountAccepted[P["t"]];
}

/** The cluster as an AccountStore's ledger: each account change a proposal through `cluster`. */
export function accountLedger(cluster: AccountProposer): AccountLedger {
  return {
    async register(user, secret) {
      await proposed(cluster, { t: "register", user, secret });
    },
    async replace(user, secret, old) {
      const outcome = await cluster.propose({ t: "set-password", user, secret, old });
      if (outcome.ok) return;
      const wrong = new WrongPasswordError();
      throw outcome.reason === wrong.message ? wrong : new CommandError(outcome.reason);
    },
    async adopt(records) {
      const added: string[] = [];
      // Once even for an empty file: its decision is where this node has caught up to.
      for (let start = 0; start === 0 || start < records.length; start += ADOPT_BATCH) {
        const batch = records.slice(start, start + ADOPT_BATCH);
        const outcome = await proposed(cluster, { t: "adopt-accounts", accounts: batch });
        added.push(...outcome.added);
      }
      return added;
    },
  };
}
