/**
 * Free space in a directory, for the receiver's check that an offered file fits. It uses
 * `node:fs` `statfs`, which Deno allows only with read access to the directory and
 * `--allow-sys=statfs`; without them (or on a system where it fails) the space is unknown and the
 * receiver only applies its size limit. The permission is queried first, so Deno never prompts.
 *
 * @module
 */
import { statfs } from "node:fs/promises";

/** Bytes an unprivileged user may still write under `dir`, or undefined when that is unknown. */
export async function freeBytes(dir: string): Promise<number | undefined> {
  try {
    const granted = (descriptor: Deno.PermissionDescriptor) =>
      Deno.permissions.querySync(descriptor).state === "granted";
    if (!granted({ name: "sys", kind: "statfs" }) || !granted({ name: "read", path: dir })) {
      return undefined;
    }
    const stats = await statfs(dir);
    const bytes = stats.bavail * stats.bsize;
    return Number.isSafeInteger(bytes) && bytes >= 0 ? bytes : undefined;
  } catch {
    return undefined;
  }
}
