/** Presence commands: ATU, whoelse, whoelsesince, OUT. */
import type { Args } from "../../shared/commands.ts";
import { formatTimestamp } from "../../shared/timestamp.ts";
import type { CommandContext } from "./context.ts";

/** `ATU`: the other active users with address and UDP port, minus those who blocked me. */
export function activeUsers(context: CommandContext): string[] {
  const { state, user } = context;
  state.logger.info(`${user} issued ATU command.`);
  const lines = state.store.userLog.users
    .filter((u) => u.username !== user && state.store.relations.canReach(user, u.username))
    .map((u) =>
      `${u.username}, ${u.ip}, ${u.udpPort}, active since ${formatTimestamp(u.loginTime)}.`
    );
  return lines.length > 0 ? lines : ["No other active user."];
}

/** `whoelse`: the names of the other online users, minus those who blocked me. */
export function whoElse(context: CommandContext): string[] {
  const { state, user } = context;
  const names = [...state.roster.online.keys()]
    .filter((name) => name !== user && state.store.relations.canReach(user, name))
    .sort();
  return names.length > 0 ? names : ["No other user is online."];
}

/** `whoelsesince <seconds>`: others online at any moment in the last `seconds` seconds. */
export function whoElseSince(context: CommandContext, args: Args): string[] {
  const { state, user, now } = context;
  const since = now - args.seconds * 1000;
  const names = new Set(state.roster.online.keys());
  for (const [name, leftAt] of state.roster.lastSeen) if (leftAt >= since) names.add(name);
  const visible = [...names]
    .filter((name) => name !== user && state.store.relations.canReach(user, name))
    .sort();
  return visible.length > 0
    ? visible
    : [`No other user was online in the last ${args.seconds} seconds.`];
}

/** `OUT` (or `logout`): logs out; the client exits. */
export async function logOut(context: CommandContext): Promise<string[]> {
  await context.state.roster.leave(context.session, "out", context.notify);
  return [`Bye, ${context.user}!`];
}
