/** The errors of lib/shared/errors.ts, as commands report them. */
import assert from "node:assert/strict";
import { UsageError } from "../../lib/shared/errors.ts";

Deno.test("UsageError without a detail says the usage is invalid", () => {
  assert.equal(new UsageError("ATU").message, "Invalid usage. Usage: ATU");
  assert.equal(new UsageError("ATU").name, "UsageError");
});
