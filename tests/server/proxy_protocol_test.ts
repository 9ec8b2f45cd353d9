/**
 * The PROXY protocol (lib/server/proxy_protocol.ts): headers of both versions parsed into the
 * client's address, health checks keeping the socket's, malformed, foreign and oversize openings
 * refused; the bytes after a header reach the server untouched; and over real TCP with
 * `proxyProtocol`, a user's address in ATU and userlog.txt is the one the balancer named, while a
 * connection without a header is closed before it can log in.
 */
import assert from "node:assert/strict";
import { MemoryFiles } from "../../lib/server/files.ts";
import { ChatServer } from "../../lib/server/mod.ts";
import { acceptProxied, parseHeader, ProxyHeaderError } from "../../lib/server/proxy_protocol.ts";
import { serveTcp } from "../../lib/server/tcp_server.ts";
import { MemoryLogger } from "../../lib/shared/logger.ts";
import { memoryPair, tcpConnection } from "../../lib/shared/transport.ts";
import { eventually } from "../../testing/eventually.ts";
import { CREDENTIALS, TestClient, testConfig } from "../../testing/server_fixture.ts";

const text = (line: string) => new TextEncoder().encode(line);

/** A version 2 header: `command` 1 (PROXY) or 0 (LOCAL), `family`, then `body`. */
function v2(command: number, family: number, body: number[]): Uint8Array {
  const signature = [0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a];
  const head = [...signature, 0x20 | command, family, body.length >> 8, body.length & 0xff];
  return Uint8Array.from([...head, ...body]);
}

const PORTS = [0x9c, 0x40, 0x2e, 0xe0]; // source 40000, destination 12000

Deno.test("parseHeader() reads version 1: TCP4, TCP6 (shortened), UNKNOWN", () => {
  const four = text("PROXY TCP4 203.0.113.7 10.0.0.2 40000 12000\r\nuser");
  assert.deepEqual(parseHeader(four), {
    remote: { hostname: "203.0.113.7", port: 40000 },
    length: 45,
  });
  const six = text("PROXY TCP6 2001:DB8:0:0:0:0:0:1 2001:db8::2 40000 12000\r\n");
  assert.deepEqual(parseHeader(six)?.remote, { hostname: "2001:db8::1", port: 40000 });
  assert.deepEqual(parseHeader(text("PROXY UNKNOWN\r\n")), { remote: undefined, length: 15 });
});

Deno.test("parseHeader() reads version 2: TCP over IPv4 and IPv6, and LOCAL keeps the socket's", () => {
  const four = v2(1, 0x11, [203, 0, 113, 7, 10, 0, 0, 2, ...PORTS]);
  assert.deepEqual(parseHeader(four), {
    remote: { hostname: "203.0.113.7", port: 40000 },
    length: 28,
  });
  const address = [0x20, 0x01, 0x0d, 0xb8, ...Array(11).fill(0), 0x05];
  const six = v2(1, 0x21, [...address, ...address, ...PORTS]);
  assert.deepEqual(parseHeader(six)?.remote, { hostname: "2001:db8::5", port: 40000 });
  assert.deepEqual(parseHeader(v2(0, 0x00, [])), { remote: undefined, length: 16 });
  // TLVs after the addresses are part of the header, skipped.
  const withTlv = v2(1, 0x11, [203, 0, 113, 7, 10, 0, 0, 2, ...PORTS, 0x04, 0x00, 0x01, 0x00]);
  assert.equal(parseHeader(withTlv)?.length, 32);
});

Deno.test("parseHeader() waits for more of a header begun, and refuses what cannot be one", () => {
  assert.equal(parseHeader(text("PROX")), undefined);
  assert.equal(parseHeader(text("PROXY TCP4 203.0.113.7")), undefined);
  assert.equal(
    parseHeader(v2(1, 0x11, [203, 0, 113, 7, 10, 0, 0, 2, ...PORTS]).subarray(0, 20)),
    undefined,
  );
  for (
    const bad of [
      text("user yoda\n"),
      text(`{"t":"req"}`),
      text("PROXY TCP4 999.0.0.1 10.0.0.2 1 2\r\n"),
      text("PROXY TCP4 203.0.113.7 10.0.0.2 70000 2\r\n"),
      text("PROXY TCP6 203.0.113.7 10.0.0.2 1 2\r\n"),
      text("PROXY TCP4 203.0.113.7 10.0.0.2 1\r\n"),
      text("PROXY " + "x".repeat(120)),
      v2(1, 0x11, [203, 0, 113]),
      v2(3, 0x11, []),
      Uint8Array.from([...v2(1, 0x11, []).subarray(0, 14), 0xff, 0xff]),
    ]
  ) {
    assert.throws(() => parseHeader(bad), ProxyHeaderError, new TextDecoder().decode(bad));
  }
});

Deno.test("acceptProxied() hands on the bytes after the header, with the client's address", async () => {
  const [server, client] = memoryPair();
  await client.write(text("PROXY TCP4 203.0.113.7 10.0.0.2 40000 12000\r\nhello"));
  const proxied = await acceptProxied(server, 1_000);
  assert.deepEqual(proxied.remoteAddr, { hostname: "203.0.113.7", port: 40000 });
  const buffer = new Uint8Array(16);
  const read = await proxied.read(buffer);
  assert.equal(new TextDecoder().decode(buffer.subarray(0, read!)), "hello");
  await client.write(text(" again"));
  const more = await proxied.read(buffer);
  assert.equal(new TextDecoder().decode(buffer.subarray(0, more!)), " again");
  proxied.close();
});

Deno.test("acceptProxied() closes a connection whose header never comes", async () => {
  const [server, client] = memoryPair();
  await client.write(text("PROXY TCP4"));
  await assert.rejects(acceptProxied(server, 20), ProxyHeaderError);
  assert.equal(await client.read(new Uint8Array(8)), null, "closed");
});

/** A server on 127.0.0.1 port 0 expecting PROXY headers; `await using` stops it. */
async function proxiedServer() {
  const files = new MemoryFiles();
  files.contents.set("credentials.txt", CREDENTIALS);
  const logger = new MemoryLogger();
  const server = new ChatServer(testConfig({ files, logger }));
  const controller = new AbortController();
  const listening = await serveTcp(server, {
    hostname: "127.0.0.1",
    port: 0,
    signal: controller.signal,
    proxyProtocol: true,
    handshakeTimeoutMs: 2_000,
  });
  const stop = async () => {
    controller.abort();
    await listening.finished;
  };
  return { port: listening.port, files, logger, [Symbol.asyncDispose]: stop };
}

/** A client over TCP to `port` whose connection opens with `header`. */
async function clientBehind(port: number, header: Uint8Array): Promise<TestClient> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await conn.write(header);
  return new TestClient(tcpConnection(conn));
}

Deno.test("behind a balancer, users' addresses are the ones its PROXY headers name", async () => {
  await using fixture = await proxiedServer();
  using yoda = await clientBehind(
    fixture.port,
    text("PROXY TCP4 203.0.113.7 127.0.0.1 40000 12000\r\n"),
  );
  assert.equal((await yoda.login("yoda", "jedi", 8001)).ok, true);
  using hans = await clientBehind(
    fixture.port,
    v2(1, 0x11, [198, 51, 100, 9, 127, 0, 0, 1, ...PORTS]),
  );
  assert.equal((await hans.login("hans", "falcon", 8002)).ok, true);
  const atu = (await hans.cmd("ATU")).lines;
  assert.equal(atu.length, 1);
  assert.match(atu[0]!, /^yoda, 203\.0\.113\.7, 8001, active since /);
  await eventually("userlog.txt with both", () => {
    const log = fixture.files.contents.get("userlog.txt") ?? "";
    return /; yoda; 203\.0\.113\.7; 8001\n.*; hans; 198\.51\.100\.9; 8002\n$/.test(log);
  });
});

Deno.test("behind a balancer, a connection without a PROXY header is closed unanswered", async () => {
  await using fixture = await proxiedServer();
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: fixture.port });
  await conn.write(text(`{"t":"req","id":1,"cmd":"user","args":{"name":"yoda"}}\n`));
  const read = await conn.read(new Uint8Array(256)).catch(() => null);
  conn.close();
  assert.equal(read, null, "nothing said, connection closed");
  await eventually(
    "the refusal logged",
    () =>
      fixture.logger.warnings.some((line) => line.includes("only the load balancer may connect")),
  );
});
