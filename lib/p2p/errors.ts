/**
 * Typed errors of the P2P engine, so callers can tell a failed transfer's cause and fall back to
 * the server when a peer cannot be reached.
 *
 * @module
 */

/**
 * Why a transfer failed. Both sides learn it: the side that fails sends an authenticated abort
 * datagram carrying the reason, and each side also times out on its own.
 *
 * - `peer-gone`: the peer shut down, or went silent after it had been talking.
 * - `timed-out`: the peer never answered (no ticket, not listening, unreachable).
 * - `rejected`: the receiver refused the offer (bad size or name, ticket mismatch).
 * - `disk-error`: reading the file (sender) or writing it (receiver) failed.
 * - `aborted`: the transfer was cancelled (an `AbortSignal`, or the node closing it).
 * - `integrity`: the received bytes did not match the sender's SHA-256.
 */
export type TransferFailureReason =
  | "peer-gone"
  | "timed-out"
  | "rejected"
  | "disk-error"
  | "aborted"
  | "integrity";

/** Every {@linkcode TransferFailureReason}, in wire order (code = index + 1). */
export const TRANSFER_FAILURE_REASONS: readonly TransferFailureReason[] = [
  "peer-gone",
  "timed-out",
  "rejected",
  "disk-error",
  "aborted",
  "integrity",
];

/**
 * The detail of the abort a receiver sends when the server revoked its ticket (the sender was
 * blocked): reason `rejected` with this text. The sender sees it as `peer: <this>`.
 */
export const REVOKED_DETAIL = "the ticket was revoked";

/** Whether a failed send was stopped because the receiver's ticket was revoked. */
export function isRevocation(error: unknown): boolean {
  return error instanceof TransferError && error.reason === "rejected" &&
    (error.detail ?? "").endsWith(REVOKED_DETAIL);
}

/** A short human description of a failure reason, for the client's terminal output. */
export function describeFailure(reason: TransferFailureReason): string {
  switch (reason) {
    case "peer-gone":
      return "the peer went away";
    case "timed-out":
      return "the peer did not answer";
    case "rejected":
      return "the peer rejected the transfer";
    case "disk-error":
      return "a disk error occurred";
    case "aborted":
      return "the transfer was cancelled";
    case "integrity":
      return "the received file failed its SHA-256 check";
  }
}

/** A file transfer that failed; `reason` says why, `detail` may say more. */
export class TransferError extends Error {
  /** Why the transfer failed. */
  readonly reason: TransferFailureReason;
  /** Extra detail (an OS error message, the peer's detail text), if any. */
  readonly detail: string | undefined;

  /** Creates the error for a transfer of `fileName` that failed for `reason`. */
  constructor(reason: TransferFailureReason, fileName: string, detail?: string) {
    super(
      `Failed to transfer ${fileName}: ${describeFailure(reason)}${detail ? ` (${detail})` : ""}`,
    );
    this.name = "TransferError";
    this.reason = reason;
    this.detail = detail;
  }
}

/** A private message that the peer never acknowledged; the caller should relay it via the server. */
export class PeerUnreachableError extends Error {
  /** Creates the error for a message to `peer` on chat `ticketId`. */
  constructor(peer: string, ticketId: string) {
    super(`Failed to reach ${peer} on private session ${ticketId}`);
    this.name = "PeerUnreachableError";
  }
}
