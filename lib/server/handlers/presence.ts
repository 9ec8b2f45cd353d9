/**
 * Presence commands: ATU, whoelse, whoelsesince, OUT. In cluster mode they read the replicated
 * online list and last-seen times: every node's users.
 */
import type { Args } from "../../shared/commands.ts";
import { formatTimestamp } from "../../shared/timestamp.ts";
import { activeUsersOf } from "../cluster/online_list.ts";
import type { ServerState } from "../state.ts";
import type { CommandContext } from "./context.ts";

/** The online users: this server's, or in cluster mode every node's. */
function onlineUsers({ cluster, store, roster }: ServerState): string[] {
  return cluster ? store.online.entries.map((entry) => entry.user) : [...roster.online.keys()];
}

/** `ATU`: the other active users with address and UDP port, minus those who blocked me. */
export function activeUsers(context: CommandContext): string[] {
  const { state, user } = context;
  state.logger.info(`${user} issued ATU command.`);
  const users = state.cluster ? activeUsersOf(state.store.online) : state.store.userLog.users;
  const lines = users
    .filter((u) => u.username !== user && state.store.relations.canReach(user, u.username))
    .map((u) =>
      `${u.username}, ${u.ip}, ${u.udpPort}, active since ${formatTimestamp(u.loginTime)}.`
    );
  return lines.length > 0 ? lines : ["No other active user."];
}

/** `whoelse`: the names of the other online users, minus those who blocked me. */
export function whoElse(context: CommandContext): string[] {
  const { state, user } = context;
  const names = onlineUsers(state)
    .filter((name) => name !== user && state.store.relations.canReach(user, name))
    .sort();
  return names.length > 0 ? names : ["No other user is online."];
}

/** `whoelsesince <seconds>`: others online at any moment in the last `seconds` seconds. */
export function whoElseSince(context: CommandContext, args: Args): string[] {
  const { state, user, now } = context;
  const since = now - args.seconds * 1000;
  const names = new Set(onlineUsers(state));
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
