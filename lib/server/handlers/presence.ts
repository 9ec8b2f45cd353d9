/** Presence commands: ATU, whoelse, whoelsesince, OUT. */
import type { Args } from "../../shared/commands.ts";
import { formatTimestamp } from "../../shared/timestamp.ts";
import type { CommandContext } from "./context.ts";

/** `ATU`: the other active users with address and UDP port, minus those who blocked me. */
export function activeUsers(context: CommandContext): string[] {
  const { server, user } = context;
  server.config.logger.info(`${user} issued ATU command.`);
  const lines = server.userLog.users
    .filter((u) => u.username !== user && server.relations.canReach(user, u.username))
    .map((u) =>
      `${u.username}, ${u.ip}, ${u.udpPort}, active since ${formatTimestamp(u.loginTime)}.`
    );
  return lines.length > 0 ? lines : ["No other active user."];
}

/** `whoelse`: the names of the other online users, minus those who blocked me. */
export function whoElse(context: CommandContext): string[] {
  const { server, user } = context;
  const names = [...server.online.keys()]
    .filter((name) => name !== user && server.relations.canReach(user, name))
    .sort();
  return names.length > 0 ? names : ["No other user is online."];
}

/** `whoelsesince <seconds>`: others online at any moment in the last `seconds` seconds. */
export function whoElseSince(context: CommandContext, args: Args): string[] {
  const { server, user, now } = context;
  const since = now - args.seconds * 1000;
  const names = new Set(server.online.keys());
  for (const [name, leftAt] of server.lastSeen) if (leftAt >= since) names.add(name);
  const visible = [...names]
    .filter((name) => name !== user && server.relations.canReach(user, name))
    .sort();
  return visible.length > 0
    ? visible
    : [`No other user was online in the last ${args.seconds} seconds.`];
}

/** `OUT` (or `logout`): logs out; the client exits. */
export async function logOut(context: CommandContext): Promise<string[]> {
  await context.server.endSession(context.session, "out");
  return [`Bye, ${context.user}!`];
}
