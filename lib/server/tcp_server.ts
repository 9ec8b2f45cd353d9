/**
 * Serves a ChatServer on a TCP port until a signal aborts, sweeping timeouts once a second. The
 * port is bound before the server starts, so a server that cannot bind never touches the files of
 * one that already runs there.
 */
import type { ChatServer } from "./chat_server.ts";
import { tcpConnection } from "../shared/transport.ts";

/** A running listener. */
export interface Listening {
  /** The port actually bound (useful with port 0). */
  port: number;
  /** Resolves when the listener has stopped and every session has ended. */
  finished: Promise<void>;
}

/**
 * Binds the port, starts the server (which empties its logs), then accepts. Throws (e.g.
 * AddrInUse) if the port cannot be bound, before the server is started.
 */
export async function serveTcp(
  server: ChatServer,
  options: { hostname: string; port: number; signal: AbortSignal; sweepMs?: number },
): Promise<Listening> {
  const listener = Deno.listen({ hostname: options.hostname, port: options.port });
  try {
    await server.start();
  } catch (error) {
    listener.close();
    throw error;
  }
  const sweeper = setInterval(() => {
    server.sweep().catch((error) => server.config.logger.warn(`Sweep failed: ${String(error)}`));
  }, options.sweepMs ?? 1000);
  const stop = () => {
    try {
      listener.close();
    } catch {
      // Already closed.
    }
  };
  options.signal.addEventListener("abort", stop, { once: true });
  const finished = (async () => {
    try {
      for await (const conn of listener) void server.handle(tcpConnection(conn));
    } catch (error) {
      if (!(error instanceof Deno.errors.BadResource) && !options.signal.aborted) throw error;
    } finally {
      clearInterval(sweeper);
      options.signal.removeEventListener("abort", stop);
      await server.close();
    }
  })();
  return { port: (listener.addr as Deno.NetAddr).port, finished };
}
