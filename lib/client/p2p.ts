/**
 * The client's peer-to-peer layer: UPD, private messaging and the answers to startprivate
 * requests, on top of the engine in lib/p2p. It plugs into the command loop as an extension.
 *
 * A private message is shown exactly once: each carries an id the sender chose, over UDP and,
 * when it has to be relayed, as the `ref` of the `message` command; the receiver remembers the
 * ids it has shown and drops a second copy, whichever path brought the first.
 */
import type { ClientExtension, ClientSession } from "./app.ts";
import type { Terminal } from "./terminal.ts";
import { ProgressDisplay } from "./progress.ts";
import { RecentIds } from "./recent_ids.ts";
import { type Args, parseArgs, quoteFileName, UNSAFE_FILE_NAME } from "../shared/commands.ts";
import { hasUnsafeCharacters } from "../shared/display.ts";
import type { EventFrame } from "../shared/protocol.ts";
import { CommandError, UsageError } from "../shared/errors.ts";
import {
  type DatagramSocket,
  describeFailure,
  isRevocation,
  newMessageId,
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
  /**
   * Offers of larger files are refused, both sides told why (`--max-file-size`; default 4 GiB).
   * Offers larger than the download directory's free space are refused too, when it is known.
   */
  maxFileBytes?: number;
  /** Engine timers and sizes, for tests. */
  engine?: Omit<PeerNodeOptions, "downloadDir" | "events">;
  /** What a leading `~` in an UPD file name stands for (default: $HOME, when readable). */
  home?: string;
  /** The progress display's clock, for tests (default: Date.now). */
  now?: () => number;
}

const ANSWER = /^(y|yes|n|no)$/i;

/** The largest file a client accepts unless told otherwise (`--max-file-size`): 4 GiB. */
export const DEFAULT_MAX_FILE_BYTES = 4 * 1024 ** 3;

/** How many ticket ids of uploads the receiver refused by revocation are remembered. */
const REMEMBERED_REVOCATIONS = 100;

/** How many private message ids a client remembers to recognise second copies. */
export const REMEMBERED_MESSAGE_IDS = 1000;

/** $HOME if this process may read it. */
function homeDirectory(): string | undefined {
  try {
    return Deno.env.get("HOME") || undefined;
  } catch {
    return undefined; // No --allow-env for HOME.
  }
}

/** `~` and `~/…` with the home directory put in; other paths as they are. */
export function expandHome(path: string, home: string | undefined): string {
  if (path !== "~" && !path.startsWith("~/")) return path;
  if (home === undefined) {
    throw new CommandError(`Error. Cannot expand ~ in ${path}: the home directory is not known`);
  }
  return home.replace(/\/+$/, "") + path.slice(1);
}

/** Why a send failed, for the line that says so; a refusal quotes the receiver's reason. */
function failure(error: unknown, receiver: string): string {
  if (!(error instanceof TransferError)) return (error as Error).message;
  if (error.reason === "rejected" && error.detail) {
    return `${receiver} refused it (${error.detail.replace(/^peer: /, "")})`;
  }
  return describeFailure(error.reason);
}

/** Builds the extension: UPD, private, stopprivate, and y/n answers to startprivate. */
export function p2pExtension(options: P2pOptions): ClientExtension & { node: PeerNode } {
  const { terminal } = options;
  const progress = new ProgressDisplay(terminal, options.now ? { now: options.now } : {});
  /** Private messages shown lately, as `<from> <id>`. */
  const shown = new RecentIds(REMEMBERED_MESSAGE_IDS);
  /** Whether message `id` from `from` is news (and remembers it). */
  const firstCopy = (from: string, id: string) => shown.firstTime(`${from} ${id}`);
  /** Chat tickets by peer name. */
  const chats = new Map<string, Ticket>();
  /** startprivate questions waiting for this user's y/n, oldest first. */
  const asks: Array<{ ask: number; from: string }> = [];
  const uploads = new Set<Promise<void>>();
  /** Running uploads by ticket id; `revoked` once the server said the receiver blocked us. */
  const sending = new Map<string, { revoked: boolean }>();
  /** Uploads the receiver stopped by revocation before the server's word about it arrived. */
  const revokedByPeer = new RecentIds(REMEMBERED_REVOCATIONS);
  /** Receiving transfers stopped by revocation: the server's line already said so. */
  const revokedReceives = new RecentIds(REMEMBERED_REVOCATIONS);

  const node = new PeerNode(options.socket, {
    ...options.engine,
    maxFileBytes: options.maxFileBytes ?? options.engine?.maxFileBytes ?? DEFAULT_MAX_FILE_BYTES,
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
        if (revokedReceives.has(f.ticketId)) return;
        if (f.refused !== undefined) {
          const option = f.refused === "too-large" ? " (--max-file-size)" : "";
          terminal.print(`Refused ${f.fileName} from ${f.peer}: ${f.detail}${option}.`, "error");
          return;
        }
        terminal.print(
          `Receiving ${f.fileName} from ${f.peer} failed: ${describeFailure(f.reason)}`,
          "error",
        );
      },
      onPrivateMessage(m) {
        if (firstCopy(m.from, m.id)) terminal.print(`${m.from}(private): ${m.text}`, "private");
      },
      onChatClosed(c) {
        if (chats.get(c.peer)?.id !== c.ticketId) return;
        chats.delete(c.peer);
        terminal.print(`Private messaging with ${c.peer} ended (${c.peer} went away)`, "notice");
      },
    },
  });

  async function upload(args: Args, session: ClientSession): Promise<void> {
    const path = expandHome(args.file, "home" in options ? options.home : homeDirectory());
    let info: Deno.FileInfo;
    try {
      info = await Deno.stat(path);
      const file = await Deno.open(path, { read: true });
      file.close();
    } catch (error) {
      throw new CommandError(
        error instanceof Deno.errors.NotFound
          ? `Error. File ${args.file} does not exist`
          : `Error. File ${args.file} cannot be read: ${(error as Error).message}`,
      );
    }
    if (!info.isFile) throw new CommandError(`Error. ${args.file} is not a file`);
    // The server refuses such names too; saying so here spares the round trip.
    if (hasUnsafeCharacters(args.file)) throw new CommandError(UNSAFE_FILE_NAME);
    const baseName = safeBaseName(path);
    const reply = await session.link.request({
      t: "cmd",
      line: `UPD ${args.user} ${quoteFileName(baseName)}`,
    });
    if (!reply.ok) return session.show(reply);
    const ticket = reply.data?.ticket;
    if (!ticket) throw new CommandError("Error. The server sent no ticket for the transfer.");
    const entry = { revoked: false };
    sending.set(ticket.id, entry);
    const transfer = node.sendFile(ticket, path).then(
      () => {
        progress.finish(ticket.id);
        terminal.print(`${args.file} has been uploaded`, "notice");
      },
      (error) => {
        progress.finish(ticket.id);
        // The server's transfer-revoked line says why.
        if (entry.revoked) return;
        if (isRevocation(error)) revokedByPeer.firstTime(ticket.id);
        terminal.print(
          `Uploading ${args.file} to ${args.user} failed: ${failure(error, args.user)}`,
          "error",
        );
      },
    ).finally(() => sending.delete(ticket.id));
    uploads.add(transfer);
    void transfer.finally(() => uploads.delete(transfer));
  }

  async function sendPrivate(args: Args, session: ClientSession): Promise<void> {
    const ticket = chats.get(args.user);
    if (!ticket) throw new CommandError(`Error. Private messaging to ${args.user} not enabled`);
    const id = newMessageId();
    // On a terminal the user's own message is echoed, so the conversation reads in order.
    const echo = () => {
      if (terminal.interactive) terminal.print(`→ ${args.user}(private): ${args.text}`, "own");
    };
    try {
      await node.sendPrivate(ticket.id, args.text, { id });
    } catch (error) {
      if (error instanceof RangeError) {
        // The command table's 1,000 characters always fit; this guards the engine's own limit.
        throw new CommandError(`Error. The private message is too long to send: ${error.message}`);
      }
      if (!(error instanceof PeerUnreachableError)) throw error;
      // The same id goes with the relayed copy, so a late direct copy is not shown again.
      const reply = await session.link.request({
        t: "cmd",
        line: `message ${args.user} ${args.text}`,
        ref: id,
      });
      if (!reply.ok) return session.show(reply);
      echo();
      terminal.print(
        `${args.user} could not be reached directly; the message was delivered through the server instead.`,
      );
      return;
    }
    echo();
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
        case "message": {
          // A relayed private message whose direct copy was shown already is not shown again.
          const { from, ref } = event.data;
          return ref !== undefined && !firstCopy(from, ref);
        }
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
          else {
            // The same safe name as the engine reports when the file is in.
            const name = safeBaseName(ticket.fileName ?? "file");
            terminal.print(`Receiving ${name} from ${ticket.peer}...`);
          }
          return false;
        }
        case "transfer-revoked": {
          // A block revoked a file ticket: stop the transfer whichever side this client is on.
          const { ticketId } = event.data;
          const upload = sending.get(ticketId);
          if (upload) upload.revoked = true;
          // Revoked even if nothing runs yet, so a late registration of the ticket is refused.
          const stopped = node.revoke(ticketId);
          if (stopped && !upload) revokedReceives.firstTime(ticketId);
          const mine = upload !== undefined || revokedByPeer.has(ticketId);
          if (stopped || revokedByPeer.has(ticketId)) {
            for (const line of event.lines) terminal.print(line, mine ? "error" : "notice");
          }
          return true;
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
