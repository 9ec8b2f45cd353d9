/**
 * Checkpoints (docs/CLUSTER.md, "catching up"): a node's whole replica state, as StoreContents, at
 * a seq of the change log, in the `snapshots` table. What proposals decide (proposals.ts) lives in
 * every node's memory and the log, and in no other table; so the tables alone cannot start a node
 * once the log holds proposals, and the log alone cannot once it has been pruned. A checkpoint can:
 * a node starts from the newest one and replays the log after its seq (a Sequencer with `after`
 * at that seq: `decide` for proposals, `applyChange` for Changes).
 *
 * Where a node starts ({@linkcode loadForReplica}), read in one snapshot:
 * 1. the newest checkpoint, if there is one, at its seq;
 * 2. else, while the log holds no proposal, the tables at the log's last seq (loadAtSeq's start):
 *    only Changes were ever made, and the tables hold them all;
 * 3. else nothing, at seq 0: the whole log is replayed. That needs the whole log, from the first
 *    change the database ever had: not once it has been pruned (then this refuses), nor for a
 *    database that held state before its log began (a single server's, upgraded; this cannot be
 *    seen). Before the first proposal on such a database, write a checkpoint from a node that
 *    loaded the tables (case 2) and has applied only Changes since.
 *
 * Pruning (change_log.ts, pruneUpTo) stops at the newest checkpoint, and deletes nothing while
 * the log holds proposals and there is none; nodes must write checkpoints for the log to shrink,
 * which a running node does on its upkeep's tick (upkeep.ts).
 *
 * @module
 */
import type postgres from "postgres";
import { readLastSeq } from "./change_log.ts";
import { emptyContents, StorageError, type StoreContents } from "../store/journal.ts";
import { type ContentsAtSeq, readContents } from "../store/postgres.ts";
import type { Store } from "../store/store.ts";

/** How many checkpoints {@linkcode writeCheckpoint} keeps, unless told otherwise. */
export const DEFAULT_CHECKPOINTS_KEPT = 3;

/** Where a node starts, and from what: a checkpoint, the tables, or nothing (the whole log). */
export interface ReplicaStart extends ContentsAtSeq {
  from: "checkpoint" | "tables" | "log";
}

/**
 * The replica state of `store` as contents: what a store built from them (buildStore) holds and
 * decides as `store` does. Blocks, waiting offline messages with their ids, refs and order, last
 * seen times, failure counts and lockouts, the board with its ids, the ids each section gives
 * next, the online list with the messages handed to logins and not yet settled, and the cluster's
 * accounts (`ledger`; `accounts`, a single server's account writes in flight, is always empty).
 * Offline messages taken by a login and neither delivered nor put back are not waiting, so not
 * here. Read synchronously: the contents are the store as it is at the call.
 */
export function contentsOf(store: Store): StoreContents {
  return {
    blocks: store.relations.blocks,
    mail: store.mailbox.waiting,
    seen: [...store.lastSeen.times].map(([user, time]) => ({ user, time })),
    lockouts: store.guard.lockouts,
    accounts: [],
    board: store.board.posts,
    next: { mail: store.mailbox.nextId, post: store.board.nextId },
    online: { entries: store.online.entries, handed: store.online.allHanded },
    ledger: store.accounts.replicated,
  };
}

/**
 * Writes `store`'s state as the checkpoint at `seq`, taken by `node`, and drops all but the newest
 * `keep` (default 3). `seq` must be what the store reflects: its Sequencer's `lastSeq`, read with
 * no await between it and this call, on a node whose own Changes are all in the log up to `seq`
 * (a Change of its own made in memory and committed later would be in the checkpoint too early).
 * Idempotent: a checkpoint at `seq` already there is kept (every node holds the same state at a
 * seq); resolves to whether this one was written. Throws RangeError for a seq the log has not
 * reached.
 */
export async function writeCheckpoint(
  sql: postgres.Sql,
  store: Store,
  seq: number,
  node: string,
  options: { keep?: number } = {},
): Promise<boolean> {
  const keep = Math.max(1, options.keep ?? DEFAULT_CHECKPOINTS_KEPT);
  // Taken now, before any await: the store moves on while the database answers.
  const contents = JSON.stringify(contentsOf(store));
  return await sql.begin(async (tx) => {
    const last = await readLastSeq(tx);
    if (!Number.isSafeInteger(seq) || seq < 0 || seq > last) {
      throw new RangeError(`Cannot write a checkpoint at seq ${seq}: the log is at ${last}`);
    }
    // Sent as text: given as jsonb, the driver would encode the JSON text again, as a string.
    const added = await tx`insert into snapshots (seq, contents, node)
      values (${seq}, ${contents}::text::jsonb, ${node})
      on conflict (seq) do nothing returning seq`;
    await tx`delete from snapshots where seq < (
      select seq from snapshots order by seq desc offset ${keep - 1} limit 1)`;
    return added.length > 0;
  }) as boolean;
}

/** The seq of the newest checkpoint, or undefined if there is none. */
export async function newestCheckpointSeq(sql: postgres.Sql): Promise<number | undefined> {
  const [row] = await sql`select max(seq) as newest from snapshots`;
  // bigint comes back as text.
  return row?.newest === null || row?.newest === undefined ? undefined : Number(row.newest);
}

/** The newest checkpoint and its seq, or undefined if there is none. */
export async function loadLatest(
  sql: postgres.Sql | postgres.TransactionSql,
): Promise<ContentsAtSeq | undefined> {
  const [row] = await sql`select seq, contents::text as contents from snapshots
    order by seq desc limit 1`;
  if (!row) return undefined;
  // bigint comes back as text.
  return { contents: JSON.parse(row.contents as string) as StoreContents, seq: Number(row.seq) };
}

/**
 * Where a cluster node starts (the rule is in this module's comment): the contents to build its
 * Store from (buildStore, with the board kept) and the seq to follow the log after. Reads in one
 * read-only REPEATABLE READ snapshot, so the choice and the contents agree. Register the node
 * (NodeLease) first, as for loadAtSeq: pruning then waits for it. Throws StorageError when the
 * log holds proposals, has been pruned, and no checkpoint is left to start from.
 */
export async function loadForReplica(sql: postgres.Sql): Promise<ReplicaStart> {
  return await sql.begin("isolation level repeatable read read only", async (tx) => {
    const latest = await loadLatest(tx);
    if (latest) return { ...latest, from: "checkpoint" };
    const [state] = await tx`select last_seq, pruned_up_to,
      exists (select 1 from changes where change->>'t' = 'proposal') as proposals
      from change_log_state`;
    const seq = Number(state?.last_seq ?? 0);
    if (!state?.proposals) return { contents: await readContents(tx), seq, from: "tables" };
    if (Number(state.pruned_up_to) > 0) {
      throw new StorageError(
        `Cannot start a cluster node: the change log holds proposals, was pruned up to seq ` +
          `${state.pruned_up_to}, and there is no checkpoint to start from`,
      );
    }
    return { contents: emptyContents(), seq: 0, from: "log" };
  }) as ReplicaStart;
}
