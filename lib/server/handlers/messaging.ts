/**
 * Messaging between users: message, broadcast, block, unblock. In cluster mode a message to a user
 * this node does not hold, a broadcast, a block and an unblock propose through the cluster and
 * reply with what it decided; the node holding a recipient delivers (cluster/local_effects.ts).
 */
import type { Args } from "../../shared/commands.ts";
import { CommandError } from "../../shared/errors.ts";
import type { ServerEvent } from "../../shared/protocol.ts";
import { accepted } from "../cluster/cluster.ts";
import { broadcastEvent } from "../cluster/delivery.ts";
import { BLOCKED_MESSAGE } from "../relations.ts";
import type { CommandContext } from "./context.ts";

/**
 * `message <user> <message>`: a direct message, stored if the recipient is offline. The `cmd`
 * frame's `ref`, if any, is passed on to the recipient.
 */
export async function directMessage(context: CommandContext, args: Args): Promise<string[]> {
  const { state, user } = context;
  const to = args.user;
  await state.roster.requireOther(user, to, "message");
  const online = state.roster.online.has(to);
  // A cluster checks the block of a message it carries as it decides it: this node may not have
  // applied the latest block or unblock yet.
  if ((online || !state.cluster) && !state.store.relations.canReach(user, to)) {
    throw new CommandError(BLOCKED_MESSAGE);
  }
  const line = `${user}: ${args.text}`;
  // The sender's ref travels with the message so the recipient can recognise a second copy (a
  // private message relayed here whose direct copy arrives after all).
  const ref = context.ref === undefined ? {} : { ref: context.ref };
  if (online) {
    context.notify(to, { kind: "message", lines: [line], data: { from: user, ...ref } });
    state.logger.info(`${user} messaged ${to}.`);
    return [`Message sent to ${to}.`];
  }
  if (state.cluster) {
    // Whether `to` is online (on another node) is decided in log order: this node may not have
    // applied their login or logout yet. The node holding them delivers it; else it waits.
    const proposal = { t: "message", from: user, to, line, ...ref, time: context.now } as const;
    if ((await accepted(state.cluster, proposal)).node !== null) {
      state.logger.info(`${user} messaged ${to}.`);
      return [`Message sent to ${to}.`];
    }
  } else {
    // Counted and queued now; the reply waits until it is written down.
    context.afterCommit(state.store.mailbox.put(to, { from: user, line, ...ref }));
  }
  state.logger.info(`${user} left a message for ${to} (offline).`);
  return [`${to} is offline; the message will be delivered when they log in.`];
}

/** `broadcast <message>`: to every online user but me and those who blocked me. */
export async function broadcast(context: CommandContext, args: Args): Promise<string[]> {
  const { state, user } = context;
  if (state.cluster) {
    // Every node's users: each node delivers to its own as it decides it.
    const { to, skipped } = await accepted(state.cluster, {
      t: "broadcast",
      from: user,
      text: args.text,
    });
    return broadcastReply(context, to.length, skipped);
  }
  let sent = 0;
  let skipped = 0;
  // One event for every recipient, so that the server encodes it once.
  const event: ServerEvent = broadcastEvent(user, args.text);
  for (const name of state.roster.online.keys()) {
    if (name === user) continue;
    if (!state.store.relations.canReach(user, name)) {
      skipped++;
      continue;
    }
    context.notify(name, event);
    sent++;
  }
  return broadcastReply(context, sent, skipped);
}

/** What a broadcast sent to `sent` users, leaving out `skipped`, tells its sender. */
function broadcastReply({ state, user }: CommandContext, sent: number, skipped: number): string[] {
  state.logger.info(`${user} broadcast a message to ${sent} user(s).`);
  if (skipped > 0) return ["Your message could not be delivered to some recipients"];
  return [`Message broadcast to ${sent} user${sent === 1 ? "" : "s"}.`];
}

/** `block <user>`: hides me from them and stops them reaching me. */
export async function blockUser(context: CommandContext, args: Args): Promise<string[]> {
  const { state, user } = context;
  await state.roster.requireOther(user, args.user, "block");
  const inForce = () => {
    // A blocked user may not message the blocker privately either, nor go on sending files.
    state.broker.blocked(user, args.user, context.notify);
    state.logger.info(`${user} blocked ${args.user}.`);
  };
  if (state.cluster) {
    await accepted(state.cluster, { t: "block", by: user, other: args.user });
    // For this node's users, after the reply; every other node does the same for its own as it
    // decides the block (cluster/local_effects.ts).
    inForce();
  } else {
    // In force now; the reply, and what the block ends, wait until it is written down (a block
    // that could not be is lifted again, and ends nothing).
    context.afterCommit(state.store.relations.block(user, args.user).then(inForce));
  }
  return [`${args.user} is blocked`];
}

/** `unblock <user>`: undoes `block`. */
export async function unblockUser(context: CommandContext, args: Args): Promise<string[]> {
  const { state, user } = context;
  await state.roster.requireOther(user, args.user, "unblock");
  const lifted = state.cluster
    ? (await accepted(state.cluster, { t: "unblock", by: user, other: args.user })).changed
    : await state.store.relations.unblock(user, args.user);
  if (!lifted) {
    throw new CommandError(`${args.user} is not blocked.`);
  }
  state.logger.info(`${user} unblocked ${args.user}.`);
  return [`${args.user} is unblocked`];
}
