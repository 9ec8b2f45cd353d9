/** Board commands: MSG, DLT, EDT, RDM. */
import type { Args } from "../../shared/commands.ts";
import { formatTimestamp } from "../../shared/timestamp.ts";
import type { CommandContext } from "./context.ts";

/** `MSG <message>`: posts to the board. */
export async function postMessage(context: CommandContext, args: Args): Promise<string[]> {
  const { state, user } = context;
  const message = await state.store.board.post(user, args.text);
  context.afterCommit(message.committed);
  const at = formatTimestamp(message.time);
  state.logger.info(`${user} posted MSG #${message.number} "${message.text}" at ${at}.`);
  return [`Message #${message.number} posted at ${at}.`];
}

/** `DLT <#n> <timestamp>`: deletes one's own message; later ones are renumbered. */
export async function deleteMessage(context: CommandContext, args: Args): Promise<string[]> {
  const { state, user } = context;
  const message = await state.store.board.remove(args.number, args.timestamp, user);
  context.afterCommit(message.committed);
  const at = formatTimestamp(message.time);
  state.logger.info(`${user} deleted MSG #${message.number} "${message.text}" at ${at}.`);
  return [`Message #${message.number} deleted at ${at}.`];
}

/** `EDT <#n> <timestamp> <message>`: replaces the text of one's own message. */
export async function editMessage(context: CommandContext, args: Args): Promise<string[]> {
  const { state, user } = context;
  const message = await state.store.board.edit(args.number, args.timestamp, user, args.text);
  context.afterCommit(message.committed);
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
