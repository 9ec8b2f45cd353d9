/**
 * What a rule of decide() is (proposals.ts), as a type: the modules of each area (presence.ts,
 * delivery.ts, brokering.ts, accounts.ts) declare their rule tables with it, and proposals.ts
 * spreads those tables into its own, so the areas need not import proposals.ts (which imports
 * them).
 *
 * @module
 */
import type { Store } from "../store/store.ts";

/**
 * The rules for proposals `P`, one per kind: each gives the data of an accepted proposal (`A`'s
 * entry for its kind) and the changes (`C`) it makes, decided without changing anything; a
 * CommandError refuses it.
 */
export type RuleTable<P extends { t: string }, A extends Record<P["t"], unknown>, C> = {
  [K in P["t"]]: (
    store: Store,
    proposal: Extract<P, { t: K }>,
  ) => { accepted: A[K]; changes: C[] };
};
