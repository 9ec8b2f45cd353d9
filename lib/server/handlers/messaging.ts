/** Messaging between users: message, broadcast, block, unblock. */
import type { Args } from "../../shared/commands.ts";
import { CommandError } from "../../shared/errors.ts";
import type { CommandContext } from "./context.ts";

/** Fails unless `other` is an existing account other than the requester. */
export async function requireOtherUser(
  context: CommandContext,
  other: string,
  action: string,
): Promise<void> {
  if (other === context.user) throw new CommandError(`You cannot ${action} yourself.`);
  if (!context.server.online.has(other) && !await context.server.accounts.find(other)) {
    throw new CommandError(`User ${other} does not exist.`);
  }
}

/** `message <user> <message>`: a direct message, stored if the recipient is offline. */
export async function directMessage(context: CommandContext, args: Args): Promise<string[]> {
  const { server, user } = context;
  const to = args.user;
  await requireOtherUser(context, to, "message");
  if (!server.relations.canReach(user, to)) {
    throw new CommandError("Your message could not be delivered as the recipient has blocked you");
  }
  const line = `${user}: ${args.text}`;
  if (server.online.has(to)) {
    context.notify(to, "message", [line], { from: user });
    server.config.logger.info(`${user} messaged ${to}.`);
    return [`Message sent to ${to}.`];
  }
  server.mailbox.put(to, { from: user, line });
  server.config.logger.info(`${user} left a message for ${to} (offline).`);
  return [`${to} is offline; the message will be delivered when they log in.`];
}

/** `broadcast <message>`: to every online user but me and those who blocked me. */
export function broadcast(context: CommandContext, args: Args): string[] {
  const { server, user } = context;
  let sent = 0;
  let skipped = 0;
  for (const name of server.online.keys()) {
    if (name === user) continue;
    if (!server.relations.canReach(user, name)) {
      skipped++;
      continue;
    }
    context.notify(name, "broadcast", [`${user}: ${args.text}`], { from: user });
    sent++;
  }
  server.config.logger.info(`${user} broadcast a message to ${sent} user(s).`);
  if (skipped > 0) return ["Your message could not be delivered to some recipients"];
  return [`Message broadcast to ${sent} user${sent === 1 ? "" : "s"}.`];
}

/** `block <user>`: hides me from them and stops them reaching me. */
export async function blockUser(context: CommandContext, args: Args): Promise<string[]> {
  await requireOtherUser(context, args.user, "block");
  context.server.relations.block(context.user, args.user);
  // A blocked user may not message the blocker privately either, so a session between them ends.
  // The reason is not given: a blocked user is not told who blocked them.
  context.server.endPrivate(context.user, args.user, "");
  context.server.config.logger.info(`${context.user} blocked ${args.user}.`);
  return [`${args.user} is blocked`];
}

/** `unblock <user>`: undoes `block`. */
export async function unblockUser(context: CommandContext, args: Args): Promise<string[]> {
  await requireOtherUser(context, args.user, "unblock");
  if (!context.server.relations.unblock(context.user, args.user)) {
    throw new CommandError(`${args.user} is not blocked.`);
  }
  context.server.config.logger.info(`${context.user} unblocked ${args.user}.`);
  return [`${args.user} is unblocked`];
}
