/**
 * The PROXY protocol (HAProxy's, versions 1 and 2) on the server's plain listener, with
 * `--proxy-protocol`: a load balancer in front of the nodes opens each connection with a header
 * naming the client's own address, and the server uses that address as the connection's (ATU,
 * userlog.txt, the per-address limits, the addresses in peer-to-peer tickets). The header is
 * untrusted input: it is read within bounds (one header's bytes at most, within a deadline) and
 * checked whole; a connection that does not open with a valid one is closed. A balancer's health
 * check (version 2 `LOCAL`, version 1 `UNKNOWN`) keeps the address the connection came from.
 */
import type { Address, Connection } from "../shared/transport.ts";

/** A connection whose PROXY header was missing, malformed or too slow; it is closed. */
export class ProxyHeaderError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ProxyHeaderError";
  }
}

const V1_PREFIX = new TextEncoder().encode("PROXY ");
/** The longest version 1 header, CRLF included (the protocol's own bound). */
const V1_MAX = 107;
const V2_SIGNATURE = Uint8Array.of(
  0x0d,
  0x0a,
  0x0d,
  0x0a,
  0x00,
  0x0d,
  0x0a,
  0x51,
  0x55,
  0x49,
  0x54,
  0x0a,
);
/** The most a version 2 header may carry after its 16 fixed bytes (addresses and TLVs). */
const V2_MAX_BODY = 1024;

/** What a complete header says: the client's address (undefined: keep the socket's), its length. */
interface Header {
  remote: Address | undefined;
  length: number;
}

/**
 * Reads the PROXY header that opens `conn` and resolves with a connection whose `remoteAddr` is the
 * client's and whose reads begin right after the header. Rejects with a ProxyHeaderError (having
 * closed `conn`) if the header is missing, malformed, longer than the protocol allows, or not
 * complete within `timeoutMs`.
 */
export async function acceptProxied(conn: Connection, timeoutMs: number): Promise<Connection> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new ProxyHeaderError("no PROXY header within the time allowed")),
      timeoutMs,
    );
  });
  try {
    return await Promise.race([readHeader(conn), deadline]);
  } catch (error) {
    conn.close();
    throw error instanceof ProxyHeaderError ? error : new ProxyHeaderError(String(error));
  } finally {
    clearTimeout(timer);
  }
}

async function readHeader(conn: Connection): Promise<Connection> {
  const buffer = new Uint8Array(16 + V2_MAX_BODY);
  let filled = 0;
  for (;;) {
    const header = parseHeader(buffer.subarray(0, filled));
    if (header) {
      const rest = buffer.slice(header.length, filled);
      return new ProxiedConnection(conn, header.remote ?? conn.remoteAddr, rest);
    }
    if (filled === buffer.length) throw new ProxyHeaderError("the PROXY header is too long");
    const read = await conn.read(buffer.subarray(filled));
    if (read === null) throw new ProxyHeaderError("the connection ended before its PROXY header");
    filled += read;
  }
}

/**
 * The header at the start of `bytes` if they hold a complete one, undefined if more bytes are
 * needed; throws a ProxyHeaderError if they cannot begin one.
 */
export function parseHeader(bytes: Uint8Array): Header | undefined {
  if (startsWith(bytes, V1_PREFIX)) return parseV1(bytes);
  if (startsWith(bytes, V2_SIGNATURE)) return parseV2(bytes);
  const could = startsWith(V1_PREFIX, bytes) || startsWith(V2_SIGNATURE, bytes);
  if (!could) throw new ProxyHeaderError("the connection does not start with a PROXY header");
  return undefined;
}

/** `PROXY TCP4|TCP6 <source> <destination> <source port> <destination port>\r\n`, or UNKNOWN. */
function parseV1(bytes: Uint8Array): Header | undefined {
  const end = bytes.subarray(0, V1_MAX).findIndex((byte, i) =>
    byte === 0x0d && bytes[i + 1] === 0x0a
  );
  if (end < 0) {
    if (bytes.length >= V1_MAX) throw new ProxyHeaderError("the PROXY header is too long");
    return undefined;
  }
  const line = new TextDecoder("latin1").decode(bytes.subarray(0, end));
  const length = end + 2;
  const fields = line.split(" ");
  if (fields[1] === "UNKNOWN") return { remote: undefined, length };
  const [, family, source, , sourcePort, destinationPort] = fields;
  const hostname = family === "TCP4" ? ipv4(source) : family === "TCP6" ? ipv6(source) : undefined;
  if (
    fields.length !== 6 || hostname === undefined || !isPort(sourcePort) ||
    !isPort(destinationPort)
  ) {
    throw new ProxyHeaderError(`malformed PROXY header: ${JSON.stringify(line.slice(0, 60))}`);
  }
  return { remote: { hostname, port: Number(sourcePort) }, length };
}

/** The binary header: signature, version and command, family, length, addresses, TLVs. */
function parseV2(bytes: Uint8Array): Header | undefined {
  if (bytes.length < 16) return undefined;
  const versionCommand = bytes[12]!;
  const family = bytes[13]!;
  const bodyLength = (bytes[14]! << 8) | bytes[15]!;
  if (versionCommand >> 4 !== 2) throw new ProxyHeaderError("unknown PROXY protocol version");
  if (bodyLength > V2_MAX_BODY) throw new ProxyHeaderError("the PROXY header is too long");
  const length = 16 + bodyLength;
  if (bytes.length < length) return undefined;
  const command = versionCommand & 0x0f;
  // LOCAL: the balancer's own connection (a health check); UNSPEC: it does not say.
  if (command === 0 || family === 0x00) return { remote: undefined, length };
  if (command !== 1) throw new ProxyHeaderError("unknown PROXY command");
  const body = bytes.subarray(16, length);
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  if (family === 0x11 && bodyLength >= 12) {
    return {
      remote: { hostname: [...body.subarray(0, 4)].join("."), port: view.getUint16(8) },
      length,
    };
  }
  if (family === 0x21 && bodyLength >= 36) {
    const groups = Array.from({ length: 8 }, (_, i) => view.getUint16(i * 2).toString(16));
    return { remote: { hostname: ipv6(groups.join(":"))!, port: view.getUint16(32) }, length };
  }
  throw new ProxyHeaderError("the PROXY header names no TCP address");
}

function startsWith(bytes: Uint8Array, prefix: Uint8Array): boolean {
  if (bytes.length < prefix.length) return false;
  return prefix.every((byte, i) => bytes[i] === byte);
}

function isPort(text: string | undefined): boolean {
  return text !== undefined && /^\d{1,5}$/.test(text) && Number(text) <= 65535;
}

function ipv4(text: string | undefined): string | undefined {
  if (text === undefined) return undefined;
  const parts = text.split(".");
  const ok = parts.length === 4 && parts.every((part) => /^\d{1,3}$/.test(part) && +part <= 255);
  return ok ? parts.map(Number).join(".") : undefined;
}

/** `text` as an IPv6 address in its shortest form, or undefined if it is not one. */
function ipv6(text: string | undefined): string | undefined {
  if (text === undefined || !/^[0-9a-fA-F:.]{2,45}$/.test(text) || !text.includes(":")) {
    return undefined;
  }
  try {
    return new URL(`http://[${text}]/`).hostname.slice(1, -1);
  } catch {
    return undefined;
  }
}

/** A connection whose first bytes were read already (after the header) and whose address is set. */
class ProxiedConnection implements Connection {
  #rest: Uint8Array;
  #readable: ReadableStream<Uint8Array> | undefined;

  constructor(
    readonly inner: Connection,
    readonly remoteAddr: Address,
    rest: Uint8Array,
  ) {
    this.#rest = rest;
  }

  read(buffer: Uint8Array): Promise<number | null> {
    if (this.#rest.length === 0) return this.inner.read(buffer);
    const count = Math.min(buffer.length, this.#rest.length);
    buffer.set(this.#rest.subarray(0, count));
    this.#rest = this.#rest.subarray(count);
    return Promise.resolve(count);
  }

  write(bytes: Uint8Array): Promise<number> {
    return this.inner.write(bytes);
  }

  get readable(): ReadableStream<Uint8Array> {
    if (this.#readable) return this.#readable;
    const rest = this.#rest;
    this.#rest = new Uint8Array(0);
    const reader = this.inner.readable.getReader();
    return this.#readable = new ReadableStream<Uint8Array>({
      start(controller) {
        if (rest.length > 0) controller.enqueue(rest);
      },
      async pull(controller) {
        const { done, value } = await reader.read();
        if (done) controller.close();
        else controller.enqueue(value);
      },
      cancel(reason) {
        return reader.cancel(reason);
      },
    });
  }

  get writable(): WritableStream<Uint8Array> {
    return this.inner.writable;
  }

  close(): void {
    this.inner.close();
  }
}
