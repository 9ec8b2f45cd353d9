/**
 * The texts a brokered request (UPD, startprivate and its answer, stopprivate) is refused with:
 * the same whether the Broker decides it on one server or the cluster's rules decide it across
 * nodes (cluster/brokering.ts).
 */

/** The text of a stopprivate to `peer` with no private session between them. */
export function notEnabled(peer: string): string {
  return `Error. Private messaging to ${peer} not enabled`;
}

/** The other refusals, by what was asked and of whom. */
export const REFUSED = {
  /** A file for `to`, who has blocked the sender. */
  fileBlocked: (to: string) => `Your file could not be sent as ${to} has blocked you`,
  /** A private-messaging request to `to`, who has blocked the requester. */
  privateBlocked: (to: string) => `Private messaging could not be started as ${to} has blocked you`,
  /** A request to `to`, who is not online. */
  offline: (to: string) => `${to} is offline`,
  /** An answer to `from`, who left (or the two blocked each other) meanwhile. */
  gone: (from: string) => `${from} is no longer available.`,
};
