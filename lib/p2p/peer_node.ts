/**
 * The P2P engine: one {@linkcode PeerNode} per client owns its UDP socket and runs every file
 * transfer (both directions) and private chat session the server brokered for it.
 *
 * ```ts
 * const node = new PeerNode(new UdpSocket({ hostname: "0.0.0.0", port: 0 }), {
 *   downloadDir: ".",
 *   events: { onFileReceived: (r) => log(`Received ${r.fileName} from ${r.from}`) },
 * });
 * node.accept(receiverTicket);                 // when the server says a file is coming
 * await node.sendFile(senderTicket, "notes.txt"); // when the server says go ahead
 * await node.close();
 * ```
 *
 * @module
 */

import { ChatSession, newMessageId } from "./chat_session.ts";
import { type Clock, SYSTEM_CLOCK } from "./clock.ts";
import { freeBytes } from "./disk_space.ts";
import { FileReceiver } from "./file_receiver.ts";
import { FileSender, type TransferResult } from "./file_sender.ts";
import { safeBaseName } from "./safe_name.ts";
import {
  DEFAULT_SETTINGS,
  type EngineSettings,
  type NodeContext,
  type PeerEvents,
  type Session,
} from "./session.ts";
import type { Datagram, DatagramSocket } from "./socket.ts";
import type { PeerAddress, Ticket } from "./ticket.ts";
import { decodeBody, parseHeader, verifyPacket } from "./wire.ts";

/** Receive buffer: more than the largest UDP payload (65,507 bytes). */
const RECEIVE_BUFFER_BYTES = 65536;
/** Revoked ticket ids remembered, so that a late registration of one is refused. */
const REMEMBERED_REVOCATIONS = 1024;

/** Options of a {@linkcode PeerNode}; every timer and size of {@linkcode EngineSettings} may be overridden. */
export interface PeerNodeOptions extends Partial<EngineSettings> {
  /** Where received files are saved (it must exist). */
  downloadDir: string;
  /** Callbacks for progress, received files, failures, messages and closed chats. */
  events?: PeerEvents;
  /** Time source for every timer (defaults to the system clock). */
  clock?: Clock;
  /**
   * Bytes free in the download directory, or undefined when unknown; an offer larger than that is
   * refused. Defaults to `statfs` (which needs `--allow-sys=statfs`; without it, unknown).
   */
  freeSpace?: (dir: string) => Promise<number | undefined>;
}

/** Options of {@linkcode PeerNode.sendFile}. */
export interface SendFileOptions {
  /** Cancels the transfer; the promise rejects with reason "aborted" and the receiver is told. */
  signal?: AbortSignal;
}

/** Options of {@linkcode PeerNode.sendPrivate}. */
export interface SendPrivateOptions {
  /**
   * The message's id, 16 lowercase hex characters (default: 64 fresh random bits). The peer's
   * `onPrivateMessage` carries it, so a copy relayed some other way can be recognised.
   */
  id?: string;
}

/** Options of {@linkcode PeerNode.closeChat}. */
export interface CloseChatOptions {
  /** Tell the peer (default true); false when the server already told it. */
  notifyPeer?: boolean;
}

/** Counts of datagrams the node received and dropped, by cause. */
export interface NodeStats {
  received: number;
  accepted: number;
  malformed: number;
  unknownTicket: number;
  wrongDirection: number;
  badTag: number;
  replayed: number;
  badBody: number;
}

/** Runs the transfers and chats of one client over one datagram socket. */
export class PeerNode {
  /** Datagram counters (for tests and diagnostics). */
  readonly stats: NodeStats = {
    received: 0,
    accepted: 0,
    malformed: 0,
    unknownTicket: 0,
    wrongDirection: 0,
    badTag: 0,
    replayed: 0,
    badBody: 0,
  };
  #socket: DatagramSocket;
  #sessions = new Map<string, Session>();
  #senders = new Set<Promise<unknown>>();
  /** Ticket ids revoked lately, oldest first. */
  #revoked = new Set<string>();
  #sends = new Set<Promise<void>>();
  #context: NodeContext;
  #closed = false;
  #loop: Promise<void>;

  /**
   * Starts receiving on `socket`. The node owns the socket from now on: `close()` closes it.
   * `options.downloadDir` must exist; received files are saved there.
   */
  constructor(socket: DatagramSocket, options: PeerNodeOptions) {
    this.#socket = socket;
    const { downloadDir, events, clock, freeSpace, ...overrides } = options;
    const settings: EngineSettings = { ...DEFAULT_SETTINGS };
    for (const [name, value] of Object.entries(overrides)) {
      if (value !== undefined) {
        (settings as unknown as Record<string, number>)[name] = value as number;
      }
    }
    const eventHandlers = events ?? {};
    this.#context = {
      clock: clock ?? SYSTEM_CLOCK,
      settings,
      events: eventHandlers,
      downloadDir,
      freeBytes: freeSpace ?? freeBytes,
      send: (packet, to) => this.#send(packet, to),
      emit: (name, value) => {
        try {
          // deno-lint-ignore no-explicit-any
          (eventHandlers[name] as ((v: any) => void) | undefined)?.(value);
        } catch {
          // A throwing event handler must not break the engine.
        }
      },
      remove: (session) => {
        if (this.#sessions.get(session.ticket.id) === session) {
          this.#sessions.delete(session.ticket.id);
        }
      },
    };
    this.#loop = this.#receiveLoop();
  }

  /** The address the node's socket is bound to (tell the server this port). */
  get localAddress(): PeerAddress {
    return this.#socket.localAddress;
  }

  /**
   * Registers a ticket this node did not start: a receiver's file ticket (the sender's offer
   * may then arrive; until then it is dropped and the sender retries) or a chat ticket of either
   * role. Throws `TypeError` for a sender ticket or a ticket id already in use.
   */
  accept(ticket: Ticket): void {
    this.#checkOpen();
    this.#checkNew(ticket);
    if (ticket.kind === "file") {
      if (ticket.role !== "receiver") {
        throw new TypeError(
          `Cannot accept ticket ${ticket.id}: a sender ticket goes to sendFile()`,
        );
      }
      this.#sessions.set(ticket.id, new FileReceiver(ticket, this.#context));
    } else {
      this.#sessions.set(ticket.id, new ChatSession(ticket, this.#context));
    }
  }

  /**
   * Sends the file at `path` under a sender's file ticket. Resolves once the receiver verified
   * the SHA-256 and saved the file; rejects with a `TransferError` whose `reason` says why not.
   * The offered name is the safe base name of `ticket.fileName` (or of `path`).
   */
  sendFile(ticket: Ticket, path: string, options: SendFileOptions = {}): Promise<TransferResult> {
    this.#checkOpen();
    if (ticket.kind !== "file" || ticket.role !== "sender") {
      throw new TypeError(
        `Cannot send a file with ticket ${ticket.id}: it is not a sender's file ticket`,
      );
    }
    this.#checkNew(ticket);
    const name = safeBaseName(ticket.fileName ?? path);
    const sender = new FileSender(ticket, path, name, this.#context);
    this.#sessions.set(ticket.id, sender);
    const run = sender.run(options.signal);
    this.#senders.add(run);
    const forget = () => this.#senders.delete(run);
    run.then(forget, forget);
    return run;
  }

  /**
   * Sends a private message on chat `ticketId`, split into several datagrams if it needs them
   * (the peer sees it once, whole). Resolves once the peer acknowledged all of it; rejects with
   * `PeerUnreachableError` after retrying for `messageGiveUpMs` (relay it through the server
   * then, with the same id), with `RangeError` for a text over
   * {@linkcode MAX_PRIVATE_TEXT_BYTES} and with `TypeError` for a malformed id.
   */
  sendPrivate(ticketId: string, text: string, options: SendPrivateOptions = {}): Promise<void> {
    const session = this.#sessions.get(ticketId);
    if (!(session instanceof ChatSession)) {
      return Promise.reject(
        new TypeError(`Cannot send on private session ${ticketId}: no such session`),
      );
    }
    return session.sendText(text, options.id ?? newMessageId());
  }

  /**
   * Revokes file ticket `ticketId` (the server said so: its sender was blocked). A transfer
   * receiving under it fails with reason `rejected` (detail `REVOKED_DETAIL`, also told
   * to the sender), its partial file removed; one sending under it rejects with `aborted`. From now
   * on its datagrams are dropped as unknown and the id cannot be registered again. Returns whether
   * a transfer was stopped (false for an unknown, finished or chat ticket).
   */
  revoke(ticketId: string): boolean {
    this.#revoked.delete(ticketId);
    this.#revoked.add(ticketId);
    if (this.#revoked.size > REMEMBERED_REVOCATIONS) {
      this.#revoked.delete(this.#revoked.values().next().value!);
    }
    const session = this.#sessions.get(ticketId);
    if (session instanceof FileReceiver || session instanceof FileSender) return session.revoke();
    return false;
  }

  /** True while chat `ticketId` is open. */
  hasChat(ticketId: string): boolean {
    const session = this.#sessions.get(ticketId);
    return session instanceof ChatSession && session.isOpen;
  }

  /**
   * Ends chat `ticketId`. By default the peer is told (its `onChatClosed` sees "peer-stopped");
   * resolves once it acknowledged or after `messageGiveUpMs`. Unknown ids resolve at once.
   */
  closeChat(ticketId: string, options: CloseChatOptions = {}): Promise<void> {
    const session = this.#sessions.get(ticketId);
    if (!(session instanceof ChatSession)) return Promise.resolve();
    return session.close(options.notifyPeer ?? true);
  }

  /**
   * Stops everything: running sends reject with reason "aborted", receiving transfers fail and
   * their partial files are removed, peers of transfers and chats are told ("peer-gone"), and the
   * socket is closed. Idempotent.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const sessions = [...this.#sessions.values()];
    await Promise.allSettled(sessions.map((s) => s.shutdown()));
    await Promise.allSettled([...this.#senders]);
    this.#sessions.clear();
    await Promise.allSettled([...this.#sends]);
    this.#socket.close();
    await this.#loop;
  }

  #checkOpen(): void {
    if (this.#closed) throw new Deno.errors.BadResource("Cannot use a closed PeerNode");
  }

  #checkNew(ticket: Ticket): void {
    if (this.#revoked.has(ticket.id)) {
      throw new TypeError(`Cannot register ticket ${ticket.id}: it was revoked`);
    }
    if (this.#sessions.has(ticket.id)) {
      throw new TypeError(`Cannot register ticket ${ticket.id}: it is already in use`);
    }
  }

  #send(packet: Uint8Array, to: PeerAddress): Promise<void> {
    const sending = this.#socket.send(packet, to).catch(() => {
      // A failed send is loss; the retransmission and timeout logic copes with it.
    });
    this.#sends.add(sending);
    sending.then(() => this.#sends.delete(sending));
    return sending;
  }

  async #receiveLoop(): Promise<void> {
    const socket = this.#socket;
    // One buffer for every datagram when the socket can receive into it: dispatch is synchronous
    // and sessions copy what they keep.
    const buffer = socket.receiveInto === undefined
      ? undefined
      : new Uint8Array(RECEIVE_BUFFER_BYTES);
    for (;;) {
      let datagram: Datagram | null;
      try {
        datagram = buffer === undefined
          ? await socket.receive()
          : await socket.receiveInto!(buffer);
      } catch {
        if (this.#closed) return;
        continue;
      }
      if (datagram === null) return;
      this.#dispatch(datagram);
    }
  }

  /** Drops anything not authenticated, fresh and well-formed; hands the rest to its session. */
  #dispatch(datagram: Datagram): void {
    const stats = this.stats;
    stats.received++;
    const header = parseHeader(datagram.data);
    if (header === null) {
      stats.malformed++;
      return;
    }
    const session = this.#sessions.get(header.ticketId);
    if (session === undefined) {
      stats.unknownTicket++;
      return;
    }
    if (header.direction !== session.peerDirection) {
      stats.wrongDirection++;
      return;
    }
    if (!verifyPacket(session.key, datagram.data)) {
      stats.badTag++;
      return;
    }
    if (!session.replay.accept(header.packetNumber)) {
      stats.replayed++;
      return;
    }
    const message = decodeBody(header.type, datagram.data);
    if (message === null) {
      stats.badBody++;
      return;
    }
    stats.accepted++;
    session.peerAddress = datagram.from;
    session.lastHeard = this.#context.clock.now();
    session.counters.datagramsReceived++;
    session.handle(message, header);
  }
}
