/** The command handlers of lib/server/handlers/mod.ts: one for each server command in COMMANDS. */
import assert from "node:assert/strict";
import { COMMANDS } from "../../lib/shared/commands.ts";
import { HANDLERS } from "../../lib/server/handlers/mod.ts";

Deno.test("every server command has a handler and every handler a server command", () => {
  for (const command of COMMANDS) {
    if (command.runs === "server") {
      assert.equal(typeof HANDLERS[command.name], "function", `${command.name} has no handler`);
    }
  }
  for (const name of Object.keys(HANDLERS)) {
    const command = COMMANDS.find((c) => c.name === name);
    assert.ok(command, `handler ${name} has no command`);
  }
});
