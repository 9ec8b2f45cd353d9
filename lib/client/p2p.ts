/**
 * The client's peer-to-peer layer: UPD, private messaging and the answers to startprivate
 * requests, on top of the engine in lib/p2p. It plugs into the command loop as an extension.
 */
import type { ClientExtension, ClientSession } from "./app.ts";
import type { Terminal } from "./terminal.ts";
import { ProgressDisplay } from "./progress.ts";
import { type Args, parseArgs } from "../shared/commands.ts";
import type { EventFrame } from "../shared/protocol.ts";
import { CommandError, UsageError } from "../shared/errors.ts";
import {
  type DatagramSocket,
  describeFailure,
  PeerNode,
  type PeerNodeOptions,
  PeerUnreachableError,
  safeBaseName,
  type Ticket,
  TransferError,
} from "../p2p/mod.ts";

/** Options for the peer-to-peer layer. */
export interface P2pOptions {
  socket: DatagramSocket;
  terminal: Terminal;
  downloadDir: string;
  /** Engine timers and sizes, for tests. */
  engine?: Omit<PeerNodeOptions, "downloadDir" | "events">;
}

const ANSWER = /^(y|yes|n|no)$/i;

/** Builds the extension: UPD, private, stopprivate, and y/n answers to startprivate. */
export function p2pExtension(options: P2pOptions): ClientExtension & { node: PeerNode } {
  const { terminal } = options;
  const progress = new ProgressDisplay(terminal);
  /** Chat tickets by peer name. */
  const chats = new Map<string, Ticket>();
  /** startprivate questions waiting for this user's y/n, oldest first. */
  const asks: Array<{ ask: number; from: string }> = [];
  const uploads = new Set<Promise<void>>();

  const node = new PeerNode(options.socket, {
    ...options.engine,
    downloadDir: options.downloadDir,
    events: {
      onProgress: (p) => progress.update(p),
      onFileReceived(r) {
        progress.finish(r.ticketId);
        terminal.print(`Received ${r.fileName} from ${r.from}`, "notice");
        terminal.print(`Saved as ${r.savedAs}`, "notice");
      },
      onTransferFailed(f) {
        progress.finish(f.ticketId);
        terminal.print(
          `Receiving ${f.fileName} from ${f.peer} failed: ${describeFailure(f.reason)}`,
          "error",
        );
      },
      onPrivateMessage: (m) => terminal.print(`${m.from}(private): ${m.text}`, "private"),
      onChatClosed(c) {
        if (chats.get(c.peer)?.id !== c.ticketId) return;
        chats.delete(c.peer);
        terminal.print(`Private messaging with ${c.peer} ended (${c.peer} went away)`, "notice");
      },
    },
  });

  async function upload(args: Args, session: ClientSession): Promise<void> {
    let info: Deno.FileInfo;
    try {
      info = await Deno.stat(args.file);
      const file = await Deno.open(args.file, { read: true });
      file.close();
    } catch (error) {
      throw new CommandError(
        error instanceof Deno.errors.NotFound
          ? `Error. File ${args.file} does not exist`
          : `Error. File ${args.file} cannot be read: ${(error as Error).message}`,
      );
    }
    if (!info.isFile) throw new CommandError(`Error. ${args.file} is not a file`);
    const baseName = safeBaseName(args.file);
    const reply = await session.link.request({ t: "cmd", line: `UPD ${args.user} ${baseName}` });
    if (!reply.ok) return session.show(reply);
    const ticket = reply.data?.ticket;
    if (!ticket) throw new CommandError("Error. The server sent no ticket for the transfer.");
    const transfer = node.sendFile(ticket, args.file).then(
      () => {
        progress.finish(ticket.id);
        terminal.print(`${args.file} has been uploaded`, "notice");
      },
      (error) => {
        progress.finish(ticket.id);
        const why = error instanceof TransferError
          ? describeFailure(error.reason)
          : (error as Error).message;
        terminal.print(`Uploading ${args.file} to ${args.user} failed: ${why}`, "error");
      },
    );
    uploads.add(transfer);
    void transfer.finally(() => uploads.delete(transfer));
  }

  async function sendPrivate(args: Args, session: ClientSession): Promise<void> {
    const ticket = chats.get(args.user);
    if (!ticket) throw new CommandError(`Error. Private messaging to ${args.user} not enabled`);
    try {
      await node.sendPrivate(ticket.id, args.text);
    } catch (error) {
      if (!(error instanceof PeerUnreachableError)) throw error;
      const reply = await session.link.request({
        t: "cmd",
        line: `message ${args.user} ${args.text}`,
      });
      if (!reply.ok) return session.show(reply);
      terminal.print(
        `${args.user} could not be reached directly; the message was delivered through the server instead.`,
      );
    }
  }

  async function stopPrivate(line: string, session: ClientSession): Promise<void> {
    const reply = await session.link.request({ t: "cmd", line });
    session.show(reply);
    const ticketId = reply.data?.ticketId;
    for (const [peer, ticket] of chats) {
      if (ticket.id === ticketId) {
        chats.delete(peer);
        await node.closeChat(ticket.id, { notifyPeer: false });
      }
    }
  }

  async function answer(line: string, session: ClientSession): Promise<void> {
    const pending = asks.shift()!;
    const yes = /^y/i.test(line);
    const reply = await session.link.request({ t: "answer", ask: pending.ask, yes });
    session.show(reply);
  }

  return {
    node,
    async command({ line, spec, rest }, session) {
      const name = spec?.name;
      try {
        if (asks.length > 0 && ANSWER.test(line.trim())) await answer(line.trim(), session);
        else if (name === "UPD") await upload(parseArgs(spec!, rest), session);
        else if (name === "private") await sendPrivate(parseArgs(spec!, rest), session);
        else if (name === "stopprivate") await stopPrivate(line, session);
        else {
          if (name === "OUT" && uploads.size > 0) {
            terminal.print(`Waiting for ${uploads.size} upload(s) to finish before logging out...`);
            await Promise.all([...uploads]);
          }
          return false;
        }
      } catch (error) {
        if (!(error instanceof UsageError || error instanceof CommandError)) throw error;
        terminal.print(error.message, "error");
      }
      return true;
    },
    event(event: EventFrame) {
      switch (event.kind) {
        case "ask":
          asks.push({ ask: event.data.ask, from: event.data.from });
          return false;
        case "ticket": {
          const { ticket } = event.data;
          try {
            node.accept(ticket);
          } catch (error) {
            terminal.print(`Ignored a bad ticket from the server: ${(error as Error).message}`);
            return true;
          }
          if (ticket.kind === "chat") chats.set(ticket.peer, ticket);
          else terminal.print(`Receiving ${ticket.fileName ?? "a file"} from ${ticket.peer}...`);
          return false;
        }
        case "private-stop": {
          const { peer, ticketId } = event.data;
          const ticket = chats.get(peer);
          // Already ended (the peer's own goodbye over UDP came first): say it only once.
          if (!ticket || ticket.id !== ticketId) return true;
          chats.delete(peer);
          node.closeChat(ticket.id, { notifyPeer: false }).catch(() => {});
          return false;
        }
        default:
          return false;
      }
    },
    async finish() {
      await node.close();
    },
  };
}
