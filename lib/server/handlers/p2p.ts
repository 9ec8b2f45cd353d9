/**
 * Peer-to-peer commands: UPD, startprivate, stopprivate, which the broker handles. In cluster mode
 * a UPD to a user whose session this node does not hold proposes a `file-ticket` through the
 * cluster, and replies with the sender's ticket it decided; the node holding the recipient hands
 * them theirs (cluster/brokering.ts, cluster/local_effects.ts). A startprivate to such a user
 * proposes a `private-ask` likewise, and a stopprivate of a session with them a `private-stop`.
 */
import { newTicketSecret, safeBaseName } from "../../p2p/mod.ts";
import { type Args, UNSAFE_FILE_NAME } from "../../shared/commands.ts";
import { hasUnsafeCharacters } from "../../shared/display.ts";
import { CommandError } from "../../shared/errors.ts";
import { notEnabled } from "../broker_texts.ts";
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

/** `startprivate <user>` (or `getaddress`): asks the target for consent. */
export async function startPrivate(context: CommandContext, args: Args): Promise<string[]> {
  const { state, user, now } = context;
  const { cluster, broker, roster } = state;
  const to = args.user;
  if (!cluster || roster.get(to)) return await broker.ask(user, to, now, context.notify);
  await roster.requireOther(user, to, "start private messaging with");
  // Every node records each request and session it decides: this node knows them all.
  broker.checkFree(user, to);
  await accepted(cluster, { t: "private-ask", from: user, to, at: now });
  return [`Waiting for ${to} to accept private messaging...`];
}

/** `stopprivate <user>`: ends a private session; the peer is told. */
export async function stopPrivate(context: CommandContext, args: Args): Promise<Answer> {
  const { state, user } = context;
  const { cluster, broker, roster } = state;
  const peer = args.user;
  const ticketId = broker.between(user, peer);
  if (!cluster || !ticketId || roster.get(peer)) return broker.stop(user, peer, context.notify);
  // Every other node ends it as it decides it, and the one holding `peer` tells them; this one
  // ends it now, unless something decided meanwhile (a block, a logout) ended it first.
  await accepted(cluster, { t: "private-stop", user, peer, ticketId });
  if (broker.between(user, peer) !== ticketId) throw new CommandError(notEnabled(peer));
  return broker.stop(user, peer, context.notify);
}
