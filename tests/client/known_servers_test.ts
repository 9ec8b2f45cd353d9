/**
 * Pinned server certificates: the file's lines, where it lives, one contract for every store, and
 * the session store that keeps pins in memory when its file fails.
 */
import assert from "node:assert/strict";
import {
  FileKnownServers,
  formatKnownServer,
  KNOWN_SERVERS_HEADER,
  type KnownServers,
  knownServersPath,
  MemoryKnownServers,
  parseKnownServers,
  serverKey,
  SessionKnownServers,
} from "../../lib/client/known_servers.ts";
import { tempDir } from "../../testing/temp_dir.ts";

const A = Array.from({ length: 32 }, () => "AA").join(":");
const B = Array.from({ length: 32 }, () => "0B").join(":");

const CAN_USE_FILES = (["read", "write"] as const).every((name) =>
  Deno.permissions.querySync({ name }).state === "granted"
);
if (!CAN_USE_FILES) {
  console.log("(known_servers file tests ignored: they need --allow-read --allow-write)");
}

Deno.test("serverKey() names a server host:port, lower case, an IPv6 host in brackets", () => {
  assert.equal(serverKey("Chat.Example.COM", 443), "chat.example.com:443");
  assert.equal(serverKey("127.0.0.1", 5), "127.0.0.1:5");
  assert.equal(serverKey("::1", 443), "[::1]:443");
  assert.equal(serverKey("[FE80::1]", 1), "[fe80::1]:1");
});

Deno.test("parseKnownServers() reads pins with their line numbers and skips the rest", () => {
  const text = KNOWN_SERVERS_HEADER + "\n" +
    formatKnownServer("127.0.0.1:443", A) +
    "  # a comment\n" +
    "broken-line\n" +
    "[::1]:443 not-a-fingerprint\n" +
    `host:1 ${A} extra\n` +
    `Chat.example.com:443 ${B.toLowerCase().replaceAll(":", "")}\n` +
    formatKnownServer("127.0.0.1:443", B);
  assert.deepEqual(
    [...parseKnownServers(text)],
    [
      ["127.0.0.1:443", { fingerprint: A, line: 3 }],
      ["chat.example.com:443", { fingerprint: B, line: 8 }],
    ],
  );
  assert.equal(formatKnownServer("h:1", A), `h:1 ${A}\n`);
});

Deno.test("knownServersPath() follows XDG_CONFIG_HOME, then HOME, else has none", () => {
  const env = (vars: Record<string, string>) => (name: string) => vars[name];
  assert.equal(
    knownServersPath(env({ XDG_CONFIG_HOME: "/x/cfg/", HOME: "/home/u" })),
    "/x/cfg/toom/known_servers",
  );
  assert.equal(
    knownServersPath(env({ XDG_CONFIG_HOME: "relative", HOME: "/home/u" })),
    "/home/u/.config/toom/known_servers",
  );
  assert.equal(knownServersPath(env({})), undefined);
  assert.equal(
    knownServersPath(() => {
      throw new Deno.errors.NotCapable("no env");
    }),
    undefined,
  );
});

/** The contract every store keeps; `make` gives a fresh, empty one. */
function contract(
  name: string,
  make: () => Promise<KnownServers & AsyncDisposable>,
  ignore = false,
) {
  Deno.test({
    name: `${name}: a pin is found under its server only, case-insensitively`,
    ignore,
    async fn() {
      await using store = await make();
      assert.equal(await store.lookup("127.0.0.1:443"), undefined);
      await store.remember("127.0.0.1:443", A);
      await store.remember("Chat.example.com:1", B);
      assert.equal((await store.lookup("127.0.0.1:443"))?.fingerprint, A);
      assert.equal((await store.lookup("chat.example.com:1"))?.fingerprint, B);
      assert.equal(await store.lookup("127.0.0.1:12001"), undefined);
      assert.equal(typeof store.where, "string");
    },
  });
}

contract(
  "MemoryKnownServers",
  () =>
    Promise.resolve(
      Object.assign(new MemoryKnownServers(), { [Symbol.asyncDispose]: async () => {} }),
    ),
);

contract(
  "FileKnownServers",
  async () => {
    const dir = await tempDir("toom-pins-");
    return Object.assign(new FileKnownServers(`${dir.path}/toom/known_servers`), {
      [Symbol.asyncDispose]: dir.remove,
    });
  },
  !CAN_USE_FILES,
);

contract("SessionKnownServers", () =>
  Promise.resolve(
    Object.assign(new SessionKnownServers(new MemoryKnownServers(), () => {}), {
      [Symbol.asyncDispose]: async () => {},
    }),
  ));

Deno.test({
  name: "FileKnownServers makes its directory 0700 and its file 0600, with a header, appending",
  ignore: !CAN_USE_FILES,
  async fn() {
    await using dir = await tempDir("toom-pins-");
    const path = `${dir.path}/config/toom/known_servers`;
    const store = new FileKnownServers(path);
    await store.remember("127.0.0.1:1", A);
    assert.equal((await Deno.stat(`${dir.path}/config/toom`)).mode! & 0o777, 0o700);
    assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
    // A line the user added by hand without a final newline does not swallow the next pin.
    await Deno.writeTextFile(path, `host:2 ${B}`, { append: true });
    await store.remember("127.0.0.1:3", B);
    assert.equal(
      await Deno.readTextFile(path),
      `${KNOWN_SERVERS_HEADER}127.0.0.1:1 ${A}\nhost:2 ${B}\n127.0.0.1:3 ${B}\n`,
    );
    assert.deepEqual(await store.lookup("127.0.0.1:3"), { fingerprint: B, line: 4 });
    // A line the user removed is forgotten at once.
    await Deno.writeTextFile(path, KNOWN_SERVERS_HEADER);
    assert.equal(await store.lookup("127.0.0.1:1"), undefined);
  },
});

/** A store whose file cannot be used. */
class BrokenStore implements KnownServers {
  readonly where = "/nowhere/known_servers";
  readonly persistent = true;
  lookup(): Promise<undefined> {
    return Promise.reject(new Deno.errors.NotCapable("Requires read access"));
  }
  remember(): Promise<void> {
    return Promise.reject(new Deno.errors.NotCapable("Requires write access"));
  }
}

Deno.test("SessionKnownServers keeps pins in memory when its file fails, and warns once", async () => {
  const warnings: string[] = [];
  const store = new SessionKnownServers(new BrokenStore(), (message) => warnings.push(message));
  assert.equal(store.persistent, true);
  assert.equal(await store.lookup("h:1"), undefined);
  await store.remember("h:1", A);
  await store.remember("h:2", B);
  assert.deepEqual(await store.lookup("h:1"), { fingerprint: A, line: 0 });
  assert.equal(store.persistent, false);
  assert.equal(store.where, "memory (for this session only)");
  assert.deepEqual(warnings, [
    "Cannot read /nowhere/known_servers (Requires read access): server certificates are " +
    "remembered for this session only.",
  ]);
});

Deno.test("SessionKnownServers prefers the file's pin (with its line) and writes through", async () => {
  const file = new MemoryKnownServers("file");
  const store = new SessionKnownServers(file, () => assert.fail("no warning"));
  await store.remember("h:1", A);
  assert.deepEqual(await file.lookup("h:1"), { fingerprint: A, line: 0 });
  file.pins.set("h:2", { fingerprint: B, line: 7 });
  assert.deepEqual(await store.lookup("h:2"), { fingerprint: B, line: 7 });
  // Without a file (no HOME), pins live for the session.
  const none = new SessionKnownServers(undefined, () => assert.fail("no warning"));
  await none.remember("h:1", A);
  assert.equal((await none.lookup("h:1"))?.fingerprint, A);
  assert.equal(none.persistent, false);
});
