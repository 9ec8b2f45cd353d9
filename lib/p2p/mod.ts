/**
 * TOOM's peer-to-peer engine over UDP: authenticated, reliable file transfer and private chat.
 * See docs/P2P.md.
 *
 * @module
 */

export {
  issueTickets,
  newTicketSecret,
  pairedTickets,
  parseTicket,
  type PeerAddress,
  type Ticket,
  type TicketKind,
  type TicketRequest,
  type TicketRole,
  type TicketSecret,
} from "./ticket.ts";
export { type Clock, SYSTEM_CLOCK } from "./clock.ts";
export { formatBytes, parseBytes } from "./bytes.ts";
export { freeBytes } from "./disk_space.ts";
export {
  describeFailure,
  isRevocation,
  PeerUnreachableError,
  REVOKED_DETAIL,
  TRANSFER_FAILURE_REASONS,
  TransferError,
  type TransferFailureReason,
} from "./errors.ts";
export {
  type Datagram,
  type DatagramSocket,
  isLoopback,
  type UdpListenOptions,
  UdpSocket,
} from "./socket.ts";
export { LossySocket, MemoryNetwork, MemorySocket, seededRandom } from "./lossy_socket.ts";
export { moveIntoPlace, numberedName, receivedFileName, safeBaseName } from "./safe_name.ts";
export type {
  ChatClosed,
  ChatCloseReason,
  EngineSettings,
  FileReceived,
  PeerEvents,
  PrivateMessage,
  TransferFailed,
  TransferProgress,
} from "./session.ts";
export { DEFAULT_SETTINGS } from "./session.ts";
export type { TransferResult } from "./file_sender.ts";
export { MAX_PRIVATE_TEXT_BYTES, newMessageId } from "./chat_session.ts";
export { PeerNode } from "./peer_node.ts";
export type {
  CloseChatOptions,
  NodeStats,
  PeerNodeOptions,
  SendFileOptions,
  SendPrivateOptions,
} from "./peer_node.ts";
