/**
 * The connection limit: its default from the free file descriptors (lib/server/limits.ts), and
 * what the server does at it.
 */
import assert from "node:assert/strict";
import {
  FALLBACK_MAX_CONNECTIONS,
  freeDescriptors,
  maxConnectionsFor,
} from "../../lib/server/limits.ts";
import { loggedIn, memoryAddress, settle, startServer } from "../../testing/server_fixture.ts";

Deno.test("maxConnectionsFor() keeps 32 free descriptors back, half of a few", () => {
  assert.equal(maxConnectionsFor(1000), 968);
  assert.equal(maxConnectionsFor(20_000), 16_384);
  assert.equal(maxConnectionsFor(64), 32);
  assert.equal(maxConnectionsFor(43), 22);
  assert.equal(maxConnectionsFor(1), 1);
  assert.equal(maxConnectionsFor(undefined), FALLBACK_MAX_CONNECTIONS);
  assert.equal(FALLBACK_MAX_CONNECTIONS, 4096);
});

const CAN_READ =
  Deno.permissions.querySync({ name: "read", path: "/dev/null" }).state === "granted";
if (!CAN_READ) console.log("(descriptor counting test ignored: it needs --allow-read)");

Deno.test({
  name: "freeDescriptors() counts what can be opened, up to a cap, and leaves nothing open",
  ignore: !CAN_READ || Deno.build.os === "windows",
  fn() {
    assert.equal(freeDescriptors(50), 50);
    const free = freeDescriptors();
    assert.ok(free !== undefined && free > 50, String(free));
  },
});

Deno.test("at --max-connections the oldest connection not logged in makes way; users never do", async () => {
  await using test = await startServer({ maxConnections: 2 });
  await loggedIn(test, "yoda", "jedi");
  const idle = test.connect(memoryAddress("10.0.0.1:1"));
  await settle();
  const hans = test.connect(memoryAddress("10.0.0.2:1"));
  assert.equal(await idle.link.closed, "Connection to server lost");
  assert.equal((await hans.login("hans", "falcon")).ok, true);
  // Two users logged in: a third connection is closed at once, and the users stay.
  const late = test.connect(memoryAddress("10.0.0.3:1"));
  assert.equal(await late.link.closed, "Connection to server lost");
  const again = test.connect(memoryAddress("10.0.0.3:2"));
  assert.equal(await again.link.closed, "Connection to server lost");
  assert.equal(test.server.state.roster.online.size, 2);
  assert.equal(
    test.logger.warnings.filter((line) => line.startsWith("Refusing connections")).length,
    1,
  );
});
