/**
 * Brokering for the peer-to-peer path: UPD and startprivate/stopprivate. The server checks the
 * rules, then hands both peers a ticket (address and fresh key); the data never passes here.
 */
import type { Args } from "../../shared/commands.ts";
import { CommandError } from "../../shared/errors.ts";
import { issueTickets } from "../../p2p/mod.ts";
import type { Session } from "../session.ts";
import type { CommandContext } from "./context.ts";
import { requireOtherUser } from "./messaging.ts";

/** The UDP address of a logged-in session: its IP as the server sees it and its UDP port. */
export function udpAddress(session: Session): { hostname: string; port: number } {
  return { hostname: session.remote.hostname, port: session.udpPort };
}

/** Checks the rules every brokered request shares and returns the target's session. */
async function reachableTarget(
  context: CommandContext,
  target: string,
  action: string,
  blockedMessage: string,
): Promise<Session> {
  await requireOtherUser(context, target, action);
  // The block is checked before presence, so a blocked user never learns the blocker is online.
  if (!context.server.relations.canReach(context.user, target)) {
    throw new CommandError(blockedMessage);
  }
  const session = context.server.online.get(target);
  if (!session) throw new CommandError(`${target} is offline`);
  return session;
}

/** `UPD <user> <filename>`: tickets for a direct file transfer (the client checked the file). */
export async function upload(context: CommandContext, args: Args): Promise<string[]> {
  const { server, user, session } = context;
  const target = await reachableTarget(
    context,
    args.user,
    "send a file to",
    `Your file could not be sent as ${args.user} has blocked you`,
  );
  const fileName = args.file.split(/[/\\]/).pop() || args.file;
  const [mine, theirs] = issueTickets({
    kind: "file",
    from: user,
    to: args.user,
    fileName,
    fromAddress: udpAddress(session),
    toAddress: udpAddress(target),
  });
  context.notify(args.user, "ticket", [], { ticket: theirs });
  context.data.ticket = mine;
  server.config.logger.info(`${user} is sending ${fileName} to ${args.user} over UDP.`);
  return [];
}

/** `startprivate <user>` (or `getaddress`): asks the target for consent. */
export async function startPrivate(context: CommandContext, args: Args): Promise<string[]> {
  const { server, user, now } = context;
  await reachableTarget(
    context,
    args.user,
    "start private messaging with",
    `Private messaging could not be started as ${args.user} has blocked you`,
  );
  if (server.privates.between(user, args.user)) {
    throw new CommandError(`Private messaging with ${args.user} is already enabled.`);
  }
  if (server.privates.asking(user, args.user)) {
    throw new CommandError(`Still waiting for ${args.user} to answer.`);
  }
  const ask = server.privates.ask(user, args.user, now);
  context.notify(args.user, "ask", [`${user} would like to private message, enter y or n:`], {
    ask: ask.id,
    from: user,
  });
  server.config.logger.info(`${user} asked ${args.user} for private messaging.`);
  return [`Waiting for ${args.user} to accept private messaging...`];
}

/** `stopprivate <user>`: ends a private session; the peer is told. */
export function stopPrivate(context: CommandContext, args: Args): string[] {
  const { server, user } = context;
  const ticketId = server.privates.close(user, args.user);
  if (!ticketId) throw new CommandError(`Error. Private messaging to ${args.user} not enabled`);
  context.notify(args.user, "private-stop", [`${user} stopped private messaging with you`], {
    peer: user,
    ticketId,
  });
  context.data.ticketId = ticketId;
  server.config.logger.info(`${user} stopped private messaging with ${args.user}.`);
  return [`Private messaging with ${args.user} stopped`];
}
