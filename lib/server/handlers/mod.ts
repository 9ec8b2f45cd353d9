/** The server's handler for each command in the command table. */
import { helpLines } from "../../shared/commands.ts";
import { deleteMessage, editMessage, postMessage, readMessages } from "./board.ts";
import type { Handler } from "./context.ts";
import { blockUser, broadcast, directMessage, unblockUser } from "./messaging.ts";
import { startPrivate, stopPrivate, upload } from "./p2p.ts";
import { activeUsers, logOut, whoElse, whoElseSince } from "./presence.ts";

/** Handlers by canonical command name. */
export const HANDLERS: Readonly<Record<string, Handler>> = {
  MSG: postMessage,
  DLT: deleteMessage,
  EDT: editMessage,
  RDM: readMessages,
  ATU: activeUsers,
  OUT: logOut,
  message: directMessage,
  broadcast,
  whoelse: whoElse,
  whoelsesince: whoElseSince,
  block: blockUser,
  unblock: unblockUser,
  UPD: upload,
  startprivate: startPrivate,
  stopprivate: stopPrivate,
  help: () => helpLines(),
};
