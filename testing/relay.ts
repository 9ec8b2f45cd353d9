/**
 * A TCP relay for tests: it sits between a client and a server, passes every byte on both ways
 * unchanged, and keeps a copy of all of them, so a test can check what an eavesdropper on the
 * network would see, or freeze it to play a network gone silent (bytes held, nothing closed).
 * `await using relay = startRelay(server.port)` closes it and its connections.
 */

/** A running relay. */
export interface Relay extends AsyncDisposable {
  /** The port clients connect to. */
  port: number;
  /** Every byte that crossed the relay so far, in either direction. */
  captured(): Uint8Array;
  /**
   * Holds every byte from now on, both ways, without closing anything (a network dropping every
   * packet, or a peer stopped); `thaw` passes them on again, in order.
   */
  freeze(): void;
  thaw(): void;
  /** Stops accepting, closes every connection and waits for them; idempotent. */
  close(): Promise<void>;
}

/** Starts a relay on a free port of 127.0.0.1 to `targetPort` there. */
export function startRelay(targetPort: number): Relay {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const chunks: Uint8Array[] = [];
  const conns = new Set<Deno.Conn>();
  const pipes: Promise<void>[] = [];
  let thawed: Promise<void> | undefined;
  let thaw = () => {};
  const pump = async (from: Deno.Conn, to: Deno.Conn) => {
    const buffer = new Uint8Array(65536);
    try {
      while (true) {
        const n = await from.read(buffer);
        if (n === null) break;
        while (thawed) await thawed;
        chunks.push(buffer.slice(0, n));
        let written = 0;
        while (written < n) written += await to.write(buffer.subarray(written, n));
      }
    } catch {
      // Either side went away.
    }
    for (const conn of [from, to]) {
      try {
        conn.close();
      } catch {
        // Already closed.
      }
      conns.delete(conn);
    }
  };
  const accepting = (async () => {
    for await (const client of listener) {
      conns.add(client);
      try {
        const server = await Deno.connect({ hostname: "127.0.0.1", port: targetPort });
        conns.add(server);
        pipes.push(pump(client, server), pump(server, client));
      } catch {
        client.close();
        conns.delete(client);
      }
    }
  })().catch(() => {});
  let closing: Promise<void> | undefined;
  const close = () =>
    closing ??= (async () => {
      thawed = undefined;
      thaw();
      listener.close();
      await accepting;
      for (const conn of conns) {
        try {
          conn.close();
        } catch {
          // Already closed.
        }
      }
      await Promise.all(pipes);
    })();
  return {
    port: (listener.addr as Deno.NetAddr).port,
    captured() {
      const all = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
      let at = 0;
      for (const chunk of chunks) {
        all.set(chunk, at);
        at += chunk.length;
      }
      return all;
    },
    freeze() {
      thawed ??= new Promise((resolve) => thaw = resolve);
    },
    thaw() {
      thawed = undefined;
      thaw();
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}
