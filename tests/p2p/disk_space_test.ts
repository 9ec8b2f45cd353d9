/** freeBytes() (lib/p2p/disk_space.ts): the free space it reports, or unknown without permission. */
import assert from "node:assert/strict";
import { freeBytes } from "../../lib/p2p/mod.ts";

const CAN_STATFS =
  Deno.permissions.querySync({ name: "sys", kind: "statfs" }).state === "granted" &&
  Deno.permissions.querySync({ name: "read" }).state === "granted";

Deno.test("freeBytes() is unknown, without prompting, when statfs is not allowed", {
  ignore: CAN_STATFS,
}, async () => {
  assert.equal(await freeBytes("."), undefined);
});

Deno.test("freeBytes() reports the space left in a directory, and unknown for a missing one", {
  ignore: !CAN_STATFS,
}, async () => {
  const free = await freeBytes(".");
  assert.ok(free !== undefined && Number.isSafeInteger(free) && free >= 0, String(free));
  assert.equal(await freeBytes("/nonexistent/toom"), undefined);
});
