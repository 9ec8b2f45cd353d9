/**
 * The default connection limit, derived from the file descriptors the process may still open:
 * every connection holds one, and the server needs some more of its own (the files it rewrites,
 * a connection being accepted and closed), so it refuses connections before the kernel refuses
 * descriptors. Deno does not let a program read its own /proc/self/limits without --allow-all,
 * so chat-server counts how many descriptors it can still open, once, at start.
 */

/** The limit when nothing is known (no read permission): the server core's default. */
export const FALLBACK_MAX_CONNECTIONS = 4096;
/** The largest derived default, whatever the descriptors: each connection also costs memory. */
export const MAX_DEFAULT_CONNECTIONS = 16_384;
/** Free descriptors kept back for the server itself (half of them when fewer than 64 are free). */
export const RESERVED_DESCRIPTORS = 32;

/** The connections to allow when `free` more descriptors can be opened. */
export function maxConnectionsFor(free: number | undefined): number {
  if (free === undefined) return FALLBACK_MAX_CONNECTIONS;
  const reserve = Math.min(RESERVED_DESCRIPTORS, Math.floor(free / 2));
  return Math.max(1, Math.min(MAX_DEFAULT_CONNECTIONS, free - reserve));
}

/**
 * How many more descriptors this process can open now, counted up to `cap` by opening /dev/null
 * until the system refuses (all are closed again at once); undefined without permission to read
 * /dev/null, or where there is none.
 */
export function freeDescriptors(
  cap = MAX_DEFAULT_CONNECTIONS + RESERVED_DESCRIPTORS,
): number | undefined {
  if (Deno.permissions.querySync({ name: "read", path: "/dev/null" }).state !== "granted") {
    return undefined;
  }
  const opened: Deno.FsFile[] = [];
  try {
    while (opened.length < cap) opened.push(Deno.openSync("/dev/null"));
    return cap;
  } catch (error) {
    // EMFILE (or ENFILE): what was opened is what was free.
    if (opened.length > 0 && /too many open files/i.test(String(error))) return opened.length;
    return undefined;
  } finally {
    for (const file of opened) file.close();
  }
}

/** The default `--max-connections` for this process, and the free descriptors it came from. */
export function defaultMaxConnections(): { maxConnections: number; freeDescriptors?: number } {
  const free = freeDescriptors();
  return {
    maxConnections: maxConnectionsFor(free),
    ...(free !== undefined ? { freeDescriptors: free } : {}),
  };
}
