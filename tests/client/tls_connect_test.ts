/**
 * How the client reaches the server, over real sockets on 127.0.0.1: a self-signed certificate
 * pinned on first use and refused when it changes (before a byte is sent), a certificate checked
 * against --ca instead, plain TCP with --no-tls, and what each side is told when the other speaks
 * the other transport. Needs only --allow-net: certificates are made in memory.
 */
import assert from "node:assert/strict";
import {
  CertificateChangedError,
  connectPlain,
  connectTls,
  notTlsMessage,
  serverDialer,
  SPEAKS_TLS,
  UntrustedCertificateError,
} from "../../lib/client/tls_connect.ts";
import { MemoryKnownServers } from "../../lib/client/known_servers.ts";
import { createSelfSigned } from "../../lib/server/certificate.ts";
import type { TlsIdentity } from "../../lib/server/certificate.ts";
import { type Connection, TransportError } from "../../lib/shared/transport.ts";
import { makeAuthority } from "../../testing/certificates.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** What one accepted connection did: whether its handshake worked, and every byte it received. */
interface Session {
  handshake: "ok" | "failed";
  received: Uint8Array;
}

/**
 * A test server on a free port, TLS with `identity` or plain without. Each connection is answered
 * with whatever it sends (an echo) until it ends; `sessions` resolves with what each did.
 */
function echoServer(identity?: { cert: string; key: string }) {
  const address = { hostname: "127.0.0.1", port: 0 };
  const listener: Deno.Listener = identity
    ? Deno.listenTls({ ...address, cert: identity.cert, key: identity.key })
    : Deno.listen(address);
  const sessions: Promise<Session>[] = [];
  let closing: Promise<void> | undefined;
  const accepting = (async () => {
    for await (const conn of listener) sessions.push(serve(conn));
  })().catch(() => {});
  async function serve(conn: Deno.Conn): Promise<Session> {
    const chunks: Uint8Array[] = [];
    let handshake: Session["handshake"] = "failed";
    try {
      if (identity) await (conn as Deno.TlsConn).handshake();
      handshake = "ok";
      const buffer = new Uint8Array(65536);
      while (true) {
        const n = await conn.read(buffer);
        if (n === null) break;
        chunks.push(buffer.slice(0, n));
        await conn.write(buffer.subarray(0, n));
      }
    } catch {
      // Reset by the client: what it sent so far is what counts.
    } finally {
      try {
        conn.close();
      } catch {
        // Already closed.
      }
    }
    const received = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
    let at = 0;
    for (const chunk of chunks) received.set(chunk, (at += chunk.length) - chunk.length);
    return { handshake, received };
  }
  return {
    port: (listener.addr as Deno.NetAddr).port,
    /** What the connections accepted so far did, once they have ended. */
    sessions: () => Promise.all(sessions),
    /** Stops accepting and waits for every connection to end; idempotent. */
    [Symbol.asyncDispose]: () =>
      closing ??= (async () => {
        listener.close();
        await accepting;
        await Promise.all(sessions);
      })(),
  };
}

/** Sends `text` and reads until as many bytes have come back. */
async function roundTrip(conn: Connection, text: string): Promise<string> {
  const writer = conn.writable.getWriter();
  await writer.write(encoder.encode(text));
  writer.releaseLock();
  const reader = conn.readable.getReader();
  let got = "";
  while (got.length < text.length) {
    const { value, done } = await reader.read();
    if (done) break;
    got += decoder.decode(value);
  }
  reader.releaseLock();
  return got;
}

let identity: TlsIdentity | undefined;
/** One self-signed server certificate for the tests that need just one (making one takes time). */
async function serverIdentity(): Promise<TlsIdentity> {
  return identity ??= await createSelfSigned();
}

Deno.test("connectTls() pins a self-signed certificate on first use and says so once", async () => {
  const id = await serverIdentity();
  await using server = echoServer(id);
  const knownServers = new MemoryKnownServers("/cfg/toom/known_servers");
  const notices: string[] = [];
  const options = {
    hostname: "127.0.0.1",
    port: server.port,
    knownServers,
    notify: (message: string) => notices.push(message),
  };
  const first = await connectTls(options);
  try {
    assert.equal(first.fingerprint, id.fingerprint);
    assert.equal(first.verified, false);
    assert.equal(await roundTrip(first, "hello over TLS\n"), "hello over TLS\n");
  } finally {
    first.close();
  }
  assert.equal(
    (await knownServers.lookup(`127.0.0.1:${server.port}`))?.fingerprint,
    id.fingerprint,
  );
  assert.equal(notices.length, 1);
  assert.match(notices[0]!, new RegExp(`^First connection to 127\\.0\\.0\\.1:${server.port}: `));
  assert.ok(notices[0]!.includes(`  SHA-256 fingerprint: ${id.fingerprint}\n`), notices[0]);
  // A memory store does not outlive the client, and the notice says so.
  assert.match(notices[0]!, /It could not be saved, so it is checked only until the client exits/);

  const second = await connectTls(options);
  second.close();
  assert.equal(notices.length, 1, "the same certificate is accepted silently");
});

Deno.test("connectTls() refuses a changed certificate loudly, before sending a byte", async () => {
  const id = await serverIdentity();
  await using server = echoServer(id);
  const knownServers = new MemoryKnownServers("/cfg/toom/known_servers");
  const old = Array.from({ length: 32 }, () => "AB").join(":");
  knownServers.pins.set(`127.0.0.1:${server.port}`, { fingerprint: old, line: 3 });
  const error = await connectTls({
    hostname: "127.0.0.1",
    port: server.port,
    knownServers,
    notify: () => assert.fail("no notice"),
  }).then(() => assert.fail("connected"), (error: Error) => error);
  assert.ok(error instanceof CertificateChangedError, String(error));
  assert.ok(error instanceof TransportError, "it ends reconnecting too");
  assert.equal(error.pinned, old);
  assert.equal(error.presented, id.fingerprint);
  for (
    const text of [
      "WARNING: THE SERVER'S CERTIFICATE HAS CHANGED. NOTHING WAS SENT TO IT.",
      `The server at 127.0.0.1:${server.port} presented a different TLS certificate`,
      `Pinned:    ${old}\n`,
      `Presented: ${id.fingerprint}\n`,
      `remove line 3 of /cfg/toom/known_servers (the line that starts with "127.0.0.1:${server.port} ")`,
    ]
  ) assert.ok(error.message.includes(text), `${text}\nin:\n${error.message}`);
  assert.equal((await knownServers.lookup(`127.0.0.1:${server.port}`))?.fingerprint, old);
  await server[Symbol.asyncDispose]();
  const [session] = await server.sessions();
  assert.deepEqual(session, { handshake: "ok", received: new Uint8Array() });
});

Deno.test("connectTls() with --ca verifies a certificate the authority signed, pinning nothing", async () => {
  const authority = await makeAuthority();
  const signed = await authority.issue(["localhost", "127.0.0.1"]);
  await using server = echoServer(signed);
  const knownServers = new MemoryKnownServers();
  for (const hostname of ["127.0.0.1", "localhost"]) {
    const conn = await connectTls({
      hostname,
      port: server.port,
      ca: authority.cert,
      caName: "/etc/toom/ca.pem",
      knownServers,
      notify: () => assert.fail("no pin notice"),
    });
    assert.equal(conn.verified, true);
    assert.equal(await roundTrip(conn, "verified\n"), "verified\n");
    conn.close();
  }
  assert.equal(knownServers.pins.size, 0);
});

Deno.test("connectTls() with --ca refuses a certificate it did not sign or signed for another host", async () => {
  const authority = await makeAuthority();
  const other = await makeAuthority("Someone else's CA");
  const cases: [string, { cert: string; key: string }][] = [
    ["a self-signed certificate", await serverIdentity()],
    ["another authority's certificate", await other.issue(["127.0.0.1"])],
    ["a certificate for another host", await authority.issue(["chat.example.com"])],
  ];
  for (const [what, certificate] of cases) {
    await using server = echoServer(certificate);
    const knownServers = new MemoryKnownServers();
    await assert.rejects(
      connectTls({
        hostname: "127.0.0.1",
        port: server.port,
        ca: authority.cert,
        caName: "/etc/toom/ca.pem",
        knownServers,
      }),
      (error: Error) => {
        assert.ok(error instanceof UntrustedCertificateError, `${what}: ${error}`);
        assert.match(
          error.message,
          new RegExp(
            `^The server at 127\\.0\\.0\\.1:${server.port} presented a certificate that does ` +
              "not verify against /etc/toom/ca\\.pem: .*Nothing was sent to it\\.$",
          ),
        );
        return true;
      },
    );
    assert.equal(knownServers.pins.size, 0, `${what}: no fallback to pinning`);
    await server[Symbol.asyncDispose]();
    assert.deepEqual((await server.sessions()).map((s) => s.received.length), [0], what);
  }
});

Deno.test("connectTls() refuses an unverified certificate where one verified before", async () => {
  await using server = echoServer(await serverIdentity());
  await assert.rejects(
    connectTls({
      hostname: "127.0.0.1",
      port: server.port,
      knownServers: new MemoryKnownServers(),
      requireVerified: true,
    }),
    /does not verify any more, although it did when the client first connected/,
  );
});

Deno.test("serverDialer() checks every connection against the pin of the first", async () => {
  await using server = echoServer(await serverIdentity());
  const notices: string[] = [];
  const dial = serverDialer({
    hostname: "127.0.0.1",
    port: server.port,
    knownServers: new MemoryKnownServers(),
    notify: (message) => notices.push(message),
  });
  for (let i = 0; i < 3; i++) (await dial()).close();
  assert.equal(notices.length, 1);
});

Deno.test("a TLS client meeting a plain server is told to start with --no-tls", async () => {
  // What a plain TOOM server does with bytes that are not a frame: an error frame, then close.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  const serving = (async () => {
    const conn = await listener.accept();
    await conn.read(new Uint8Array(4096));
    await conn.write(encoder.encode('{"t":"error","code":"invalid-utf8","text":"Bad"}\n'));
    conn.close();
  })();
  try {
    await assert.rejects(
      connectTls({ hostname: "127.0.0.1", port, knownServers: new MemoryKnownServers() }),
      (error: Error) => {
        assert.ok(error instanceof TransportError, String(error));
        assert.equal(error.message, notTlsMessage(`127.0.0.1:${port}`));
        assert.match(
          error.message,
          /does not speak TLS; if it was started with --no-tls, start the client with --no-tls too/,
        );
        return true;
      },
    );
  } finally {
    await serving;
    listener.close();
  }
});

Deno.test("a --no-tls client meeting a TLS server is told to drop --no-tls", async () => {
  await using server = echoServer(await serverIdentity());
  const conn = await connectPlain("127.0.0.1", server.port);
  try {
    const writer = conn.writable.getWriter();
    await writer.write(encoder.encode('{"t":"hello","v":1}\n'));
    writer.releaseLock();
    await assert.rejects(
      conn.readable.getReader().read(),
      (error: Error) => error instanceof TransportError && error.message === SPEAKS_TLS,
    );
  } finally {
    conn.close();
  }
  await server[Symbol.asyncDispose]();
  assert.deepEqual((await server.sessions()).map((s) => s.handshake), ["failed"]);
});

Deno.test("connectPlain() speaks plain TCP to a plain server (--no-tls on both sides)", async () => {
  await using server = echoServer();
  const conn = await connectPlain("127.0.0.1", server.port);
  assert.equal(await roundTrip(conn, '{"t":"hello","v":1}\n'), '{"t":"hello","v":1}\n');
  conn.close();
  await server[Symbol.asyncDispose]();
  assert.equal(decoder.decode((await server.sessions())[0]!.received), '{"t":"hello","v":1}\n');
});

Deno.test("a TLS connection carries a megabyte both ways with backpressure and ends cleanly", async () => {
  await using server = echoServer(await serverIdentity());
  const conn = await connectTls({
    hostname: "127.0.0.1",
    port: server.port,
    knownServers: new MemoryKnownServers(),
  });
  const data = new Uint8Array(1 << 20).map((_, i) => i % 251);
  const writing = (async () => {
    const writer = conn.writable.getWriter();
    for (let at = 0; at < data.length; at += 16384) {
      await writer.write(data.subarray(at, at + 16384));
    }
    await writer.close();
  })();
  let got = 0;
  let same = true;
  for await (const chunk of conn.readable) {
    for (let i = 0; i < chunk.length; i++) same &&= chunk[i] === data[got + i];
    got += chunk.length;
    if (got >= data.length) break;
  }
  await writing;
  conn.close();
  conn.close(); // Idempotent.
  assert.equal(got, data.length);
  assert.ok(same, "the bytes came back unchanged");
  assert.equal(conn.remoteAddr.hostname, "127.0.0.1");
  assert.equal(conn.remoteAddr.port, server.port);
});

Deno.test("connectTls() reports a refused connection as the network's error", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  await assert.rejects(
    connectTls({ hostname: "127.0.0.1", port, knownServers: new MemoryKnownServers() }),
    (error: Error) =>
      !(error instanceof TransportError) && /ECONNREFUSED|refused/i.test(error.message),
  );
});
