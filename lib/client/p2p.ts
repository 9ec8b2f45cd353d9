/**
 * The client's peer-to-peer layer: UPD, private messaging and the answers to startprivate
 * requests, on top of the engine in lib/p2p. It plugs into the command loop as an extension.
 */
import type { ClientExtension, ClientSession, Terminal } from "./app.ts";
import type { EventFrame } from "./server_link.ts";
import { findCommand, parseArgs, splitCommand } from "../shared/commands.ts";
import { CommandError, UsageError } from "../shared/errors.ts";
import {
  type DatagramSocket,
  describeFailure,
  parseTicket,
  PeerNode,
  type PeerNodeOptions,
  PeerUnreachableError,
  type Ticket,
  TransferError,
  type TransferProgress,
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

function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(1)} ${units[unit]}`;
}

function formatSeconds(seconds: number): string {
  if (!Number.isFinite(seconds)) return "--";
  if (seconds < 60) return `${Math.ceil(seconds)}s`;
  return `${Math.floor(seconds / 60)}m${String(Math.ceil(seconds % 60)).padStart(2, "0")}s`;
}

/** One line describing a transfer's progress: bar, percentage, rate and ETA. */
export function progressLine(p: TransferProgress, width = 20): string {
  const fraction = p.bytesTotal === 0 ? 1 : Math.min(1, p.bytesDone / p.bytesTotal);
  const filled = Math.round(fraction * width);
  const rate = p.elapsedMs > 0 ? p.bytesDone / (p.elapsedMs / 1000) : 0;
  const eta = rate > 0 ? (p.bytesTotal - p.bytesDone) / rate : Infinity;
  const arrow = p.direction === "send" ? `${p.fileName} → ${p.peer}` : `${p.fileName} ← ${p.peer}`;
  return `[${"#".repeat(filled)}${"-".repeat(width - filled)}] ${
    String(Math.floor(fraction * 100)).padStart(3)
  }% ${formatBytes(rate)}/s ETA ${formatSeconds(eta)} ${arrow}`;
}

/**
 * Shows progress: on a terminal one status line with every active transfer, redrawn at most ten
 * times a second; piped, a line at 25, 50 and 75 per cent of each transfer.
 */
class ProgressDisplay {
  readonly #active = new Map<string, TransferProgress>();
  readonly #printed = new Map<string, number>();
  #drawnAt = 0;

  constructor(readonly terminal: Terminal) {}

  update(progress: TransferProgress): void {
    if (this.terminal.interactive) {
      this.#active.set(progress.ticketId, progress);
      const now = Date.now();
      if (now - this.#drawnAt < 100 && progress.bytesDone < progress.bytesTotal) return;
      this.#drawnAt = now;
      this.terminal.status([...this.#active.values()].map((p) => progressLine(p)).join("  |  "));
      return;
    }
    if (progress.bytesTotal === 0) return;
    const quarter = Math.floor((progress.bytesDone / progress.bytesTotal) * 4) * 25;
    if (quarter >= 100 || quarter <= (this.#printed.get(progress.ticketId) ?? 0)) return;
    this.#printed.set(progress.ticketId, quarter);
    const verb = progress.direction === "send" ? "Uploading" : "Receiving";
    this.terminal.print(`${verb} ${progress.fileName}: ${quarter}%`);
  }

  finish(ticketId: string): void {
    this.#active.delete(ticketId);
    this.#printed.delete(ticketId);
    if (this.terminal.interactive && this.#active.size === 0) this.terminal.status(null);
  }
}

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
        terminal.print(`Received ${r.fileName} from ${r.from}`, "event");
        terminal.print(`Saved as ${r.savedAs}`);
      },
      onTransferFailed(f) {
        progress.finish(f.ticketId);
        terminal.print(
          `Receiving ${f.fileName} from ${f.peer} failed: ${describeFailure(f.reason)}`,
          "error",
        );
      },
      onPrivateMessage: (m) => terminal.print(`${m.from}(private): ${m.text}`, "event"),
      onChatClosed(c) {
        if (chats.get(c.peer)?.id !== c.ticketId) return;
        chats.delete(c.peer);
        terminal.print(`Private messaging with ${c.peer} ended (${c.peer} went away)`, "event");
      },
    },
  });

  async function upload(rest: string, session: ClientSession): Promise<void> {
    const args = parseArgs(findCommand("UPD")!, rest);
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
    const baseName = args.file.split(/[/\\]/).filter(Boolean).pop() ?? args.file;
    const reply = await session.link.request({ t: "cmd", line: `UPD ${args.user} ${baseName}` });
    if (!reply.ok) return session.show(reply);
    const ticket = parseTicket(reply.data?.ticket);
    const transfer = node.sendFile(ticket, args.file).then(
      () => {
        progress.finish(ticket.id);
        terminal.print(`${args.file} has been uploaded`, "event");
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

  async function sendPrivate(rest: string, session: ClientSession): Promise<void> {
    const args = parseArgs(findCommand("private")!, rest);
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
    async command(line, session) {
      const { word, rest } = splitCommand(line);
      const name = findCommand(word)?.name;
      try {
        if (asks.length > 0 && ANSWER.test(line.trim())) await answer(line.trim(), session);
        else if (name === "UPD") await upload(rest, session);
        else if (name === "private") await sendPrivate(rest, session);
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
      const data = event.data ?? {};
      switch (event.kind) {
        case "ask":
          if (typeof data.ask === "number" && typeof data.from === "string") {
            asks.push({ ask: data.ask, from: data.from });
          }
          return false;
        case "ticket": {
          let ticket: Ticket;
          try {
            ticket = parseTicket(data.ticket);
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
          const ticket = typeof data.peer === "string" ? chats.get(data.peer) : undefined;
          // Already ended (the peer's own goodbye over UDP came first): say it only once.
          if (!ticket || ticket.id !== data.ticketId) return true;
          chats.delete(data.peer as string);
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
