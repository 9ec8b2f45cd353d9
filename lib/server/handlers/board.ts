/**
 * Board commands: MSG, DLT, EDT, RDM. In cluster mode MSG, DLT and EDT propose through the
 * cluster and reply with what it decided (the same texts); RDM reads this node's replica.
 */
import type { Args } from "../../shared/commands.ts";
import { formatTimestamp } from "../../shared/timestamp.ts";
import { accepted } from "../cluster/cluster.ts";
import type { CommandContext } from "./context.ts";

/** What a board change tells its reply and the log. */
interface Done {
  number: number;
  text: string;
  /** When it was made, whole seconds. */
  time: number;
}

/** Holds the reply until a change made on this server's board is written down. */
function committed(context: CommandContext, change: Done & { committed: Promise<void> }): Done {
  context.afterCommit(change.committed);
  return change;
}

/** `MSG <message>`: posts to the board. */
export async function postMessage(context: CommandContext, args: Args): Promise<string[]> {
  const { state, user, now } = context;
  const { cluster, store } = state;
  const message: Done = cluster
    ? {
      ...await accepted(cluster, { t: "post", author: user, text: args.text, time: now }),
      text: args.text,
    }
    : committed(context, await store.board.post(user, args.text));
  const at = formatTimestamp(message.time);
  state.logger.info(`${user} posted MSG #${message.number} "${message.text}" at ${at}.`);
  return [`Message #${message.number} posted at ${at}.`];
}

/** `DLT <#n> <timestamp>`: deletes one's own message; later ones are renumbered. */
export async function deleteMessage(context: CommandContext, args: Args): Promise<string[]> {
  const { state, user, now } = context;
  const { cluster, store } = state;
  const message: Done = cluster
    ? await accepted(cluster, {
      t: "unpost",
      number: args.number,
      time: args.timestamp,
      requester: user,
      at: now,
    })
    : committed(context, await store.board.remove(args.number, args.timestamp, user));
  const at = formatTimestamp(message.time);
  state.logger.info(`${user} deleted MSG #${message.number} "${message.text}" at ${at}.`);
  return [`Message #${message.number} deleted at ${at}.`];
}

/** `EDT <#n> <timestamp> <message>`: replaces the text of one's own message. */
export async function editMessage(context: CommandContext, args: Args): Promise<string[]> {
  const { state, user, now } = context;
  const { cluster, store } = state;
  const message: Done = cluster
    ? {
      ...await accepted(cluster, {
        t: "edit",
        number: args.number,
        time: args.timestamp,
        requester: user,
        text: args.text,
        at: now,
      }),
      text: args.text,
    }
    : committed(context, await store.board.edit(args.number, args.timestamp, user, args.text));
  const at = formatTimestamp(message.time);
  state.logger.info(`${user} edited MSG #${message.number} "${message.text}" at ${at}.`);
  return [`Message #${message.number} edited at ${at}.`];
}

/** `RDM <timestamp>`: every message posted or edited strictly after the timestamp. */
export function readMessages(context: CommandContext, args: Args): string[] {
  const { state, user } = context;
  const messages = state.store.board.since(args.timestamp);
  const since = formatTimestamp(args.timestamp);
  // One line, not one per message: a large board must not flood the server's terminal.
  state.logger.info(
    `${user} issued RDM command: ${messages.length} message(s) since ${since}.`,
  );
  if (messages.length === 0) return [`No new message since ${since}.`];
  return messages.map((m) =>
    `#${m.number}; ${m.author}: "${m.text}" ${m.edited ? "edited" : "posted"} at ${
      formatTimestamp(m.time)
    }.`
  );
}
