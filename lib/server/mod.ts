/**
 * lib/server/ is everything only chat-server runs: the core that accepts connections and
 * delivers (chat_server.ts), the login state machine, the roster of online users, the
 * peer-to-peer broker, the command handlers, the stores and the text files behind them, the
 * lockout and the rate limit. It reads lib/shared/ and lib/p2p/ (for tickets), never lib/client/.
 *
 * This module is the wing's public face, what chat-server and the benchmarks use.
 *
 * @module
 */

export { parseServerArgs, type ServerArgs } from "./args.ts";
export { ChatServer, SERVER_AGENT } from "./chat_server.ts";
export type { ServerConfig } from "./state.ts";
export { DiskFiles, MemoryFiles, type TextFiles } from "./files.ts";
export { type Listening, serveTcp } from "./tcp_server.ts";
export {
  DEFAULT_CERT_FILE,
  DEFAULT_KEY_FILE,
  loadCertificateFiles,
  loadOrCreateCertificate,
  type TlsIdentity,
} from "./certificate.ts";
