/** Serves a ChatServer on a TCP port until a signal aborts, sweeping timeouts once a second. */
import type { ChatServer } from "./chat_server.ts";
import { tcpConnection } from "../shared/transport.ts";

/** A running listener. */
export interface Listening {
  /** The port actually bound (useful with port 0). */
  port: number;
  /** Resolves when the listener has stopped and every session has ended. */
  finished: Promise<void>;
}

/** Starts listening; throws (e.g. AddrInUse) if the port cannot be bound. */
export function serveTcp(
  server: ChatServer,
  options: { hostname: string; port: number; signal: AbortSignal; sweepMs?: number },
): Listening {
  const listener = Deno.listen({ hostname: options.hostname, port: options.port });
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
