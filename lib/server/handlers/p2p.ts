/**
 * Peer-to-peer commands: UPD, startprivate, stopprivate, which the broker handles. In cluster mode
 * a UPD to a user whose session this node does not hold proposes a `file-ticket` through the
 * cluster, and replies with the sender's ticket it decided; the node holding the recipient hands
 * them theirs (cluster/brokering.ts, cluster/local_effects.ts).
 */
import { newTicketSecret, safeBaseName } from "../../p2p/mod.ts";
import { type Args, UNSAFE_FILE_NAME } from "../../shared/commands.ts";
import { hasUnsafeCharacters } from "../../shared/display.ts";
import { CommandError } from "../../shared/errors.ts";
import { accepted } from "../cluster/cluster.ts";
import type { Answer } from "../replies.ts";
import type { CommandContext } from "./context.ts";

/** `UPD <user> <filename>`: tickets for a direct file transfer (the client checked the file). */
export async function upload(context: CommandContext, args: Args): Promise<Answer> {
  const { state, session } = context;
  const { cluster, broker, roster } = state;
  if (!cluster || roster.get(args.user)) {
    return await broker.upload(session, args.user, args.file, context.notify);
  }
  // The Broker's checks, in its order; the block and presence are checked as it is decided.
  if (hasUnsafeCharacters(args.file)) throw new CommandError(UNSAFE_FILE_NAME);
  await roster.requireOther(context.user, args.user, "send a file to");
  const fileName = safeBaseName(args.file);
  const { tickets } = await accepted(cluster, {
    t: "file-ticket",
    from: context.user,
    to: args.user,
    fileName,
    ...newTicketSecret(),
  });
  state.logger.info(`${context.user} is sending ${fileName} to ${args.user} over UDP.`);
  return { ok: true, lines: [], data: { ticket: tickets[0] } };
}
