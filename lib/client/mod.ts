/**
 * lib/client/ is everything only chat-client runs: the conversation with its user (app.ts), the
 * link to the server, the terminals, transfer progress and the glue between the command loop
 * and the peer-to-peer engine. It reads lib/shared/ and lib/p2p/, never lib/server/.
 *
 * This module is the wing's public face, what chat-client uses.
 *
 * @module
 */

export { type ClientArgs, parseClientArgs } from "./args.ts";
export {
  type ClientExtension,
  type ClientOptions,
  EXIT_FAILURE,
  EXIT_OK,
  runClient,
} from "./app.ts";
export type { LineKind, StatusRender, Terminal } from "./terminal.ts";
export { FileKnownServers, knownServersPath, SessionKnownServers } from "./known_servers.ts";
export { p2pExtension } from "./p2p.ts";
export { PlainTerminal } from "./plain_terminal.ts";
export { serverDialer } from "./tls_connect.ts";
export { TtyTerminal } from "./tty_terminal.ts";
